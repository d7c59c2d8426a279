#!/usr/bin/env python3
"""Issue 15's attacks run through two builds of the corral CLI, with the
host's peak resident set (from wait4's rusage) and its peak count of open
descriptors (sampled from /proc/PID/fd every 5 ms) for each: the table of
the closing note, "before and after the fix".

Usage: bench/hostile.py OLD_CORRAL NEW_CORRAL   (make guests first)

Each attack runs with a descriptor limit of 20,000 (as on the machine where
the issue was found) and a 60 s deadline; what the worker printed of its
progress and errors is shown, so a row says how the attack ended, not only
what it cost.
"""

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUESTS = os.path.join(ROOT, "guests/rust/target/wasm32-wasip2/release")
DEADLINE = 60


def guest(name):
    return os.path.join(GUESTS, f"{name}.wasm")


def attacks(scratch_dir):
    """(label, arguments after `corral`) of each attack."""
    fs = guest("hostile-fs")
    fd = guest("hostile-fd")
    return [
        ("set_len(2 GiB) in @scratch, --memory 64MiB",
         ["run", "--memory", "64MiB", "--mount", "@scratch:/", fs, "--", "set-len", "/f", "2147483648"]),
        ("1 byte written at 2 GiB in @scratch, --memory 64MiB",
         ["run", "--memory", "64MiB", "--mount", "@scratch:/", fs, "--", "write-at", "/f", "2147483648"]),
        ("set_len(8 GiB) in the shared tree",
         ["run", "--mount", "@shared:/", fs, "--", "set-len", "/f", "8589934592"]),
        ("files opened, never closed, on a rw host mount",
         ["run", "--mount", f"{scratch_dir}:/d:rw", fd, "--", "open-forever", "/d", "exit"]),
        ("files opened, never closed, in @scratch",
         ["run", "--mount", "@scratch:/", fd, "--", "open-forever", "/", "exit"]),
        ("hard links of one file in @scratch, --memory 64MiB",
         ["run", "--memory", "64MiB", "--mount", "@scratch:/", fs, "--", "link-many", "/f", "1000000"]),
        ("a chain of 10,000 directories, then --vfs-save",
         ["run", "--mount", "@shared:/", "--vfs-save", os.path.join(scratch_dir, "saved"),
          fs, "--", "deep-dirs", "10000"]),
    ]


def raise_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))


def measure(corral, args):
    """Runs one attack; returns (peak RSS MiB, peak fds, exit code, last line)."""
    proc = subprocess.Popen(
        [corral, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=raise_fd_limit,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    peak_fds = 0
    done = threading.Event()

    def sample():
        nonlocal peak_fds
        path = f"/proc/{proc.pid}/fd"
        while not done.is_set():
            try:
                peak_fds = max(peak_fds, len(os.listdir(path)))
            except OSError:
                pass
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    timer = threading.Timer(DEADLINE, proc.kill)
    timer.start()
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = output.decode(errors="replace").splitlines()
    said = [l for l in lines if l.startswith(("opened", "linked")) or ": " in l]
    return usage.ru_maxrss / 1024, peak_fds, proc.returncode, "; ".join(said)[:110]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench/hostile.py OLD_CORRAL NEW_CORRAL")
    builds = {"old": sys.argv[1], "new": sys.argv[2]}
    print("| attack | build | peak RSS | peak fds | exit | what the worker printed |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for index in range(len(attacks("/"))):
        for build, corral in builds.items():
            scratch_dir = tempfile.mkdtemp()
            try:
                label, args = attacks(scratch_dir)[index]
                rss, fds, code, last = measure(corral, args)
            finally:
                # A saved 10,000-deep chain is deeper than shutil recurses.
                subprocess.run(["rm", "-rf", scratch_dir], check=True)
            print(f"| {label} | {build} | {rss:,.0f} MiB | {fds:,} | {code} | `{last}` |",
                  flush=True)


if __name__ == "__main__":
    main()
