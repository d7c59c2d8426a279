"""CPython multiprocessing baseline: P processes x N locked appends to one
shared file, in appends per second.

Each line is ``<writer>:<seq>:<crc32>``; a writer takes an mp.Lock, seeks to
the end and writes the line in two unbuffered writes (as Corral's
``appender`` guest does: the classic append that is only safe under the
lock). The file lives in /dev/shm when there is one (Corral's tree is in
memory too). The parent checks that exactly P * N intact lines are there,
each writer's in order. Wall time from the first start to the last join.
"""

import multiprocessing as mp
import os
import tempfile
import time
import zlib

from harness import check, main


def append(lock, path, name, n):
    with open(path, "r+b", buffering=0) as f:
        for seq in range(n):
            body = f"{name}:{seq:06}"
            line = f"{body}:{zlib.crc32(body.encode()):08x}\n".encode()
            half = len(line) // 2
            with lock:
                f.seek(0, os.SEEK_END)
                f.write(line[:half])
                f.write(line[half:])


def verify(path, procs, n):
    seen = {}
    with open(path, "rb") as f:
        for raw in f:
            body, _, crc = raw.decode().rstrip("\n").rpartition(":")
            check(int(crc, 16) == zlib.crc32(body.encode()), f"torn line {raw!r}")
            name, seq = body.split(":")
            check(seen.get(name, -1) == int(seq) - 1, f"{name}: line {seq} out of order")
            seen[name] = int(seq)
    check(len(seen) == procs and all(v == n - 1 for v in seen.values()), "lines missing")


def appends(args):
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="corral-bench-", dir=where)
    os.close(fd)
    try:
        start = time.perf_counter()
        procs = [
            ctx.Process(target=append, args=(lock, path, f"w{i}", args.n))
            for i in range(args.procs)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - start
        check(all(p.exitcode == 0 for p in procs), "a writer failed")
        verify(path, args.procs, args.n)
    finally:
        os.unlink(path)
    return args.procs * args.n / elapsed


def options(parser):
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=10)


if __name__ == "__main__":
    main({"appends": appends}, options)
