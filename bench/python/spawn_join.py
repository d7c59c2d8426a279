"""CPython multiprocessing baseline: starting and joining processes.

Workloads (figures in microseconds per process, or KiB per idle process):
- batch: start N processes, then join them all; checks every exit code.
- sequential: start and join N processes one after another.
- restart: a hand-written supervisor: a Process that fails at once,
  started again N times (what Corral's restart policy replaces).
- idle: PSS per idle forked child (what each extra process really costs),
  measured with N children waiting on an Event.

``--method`` picks the start method (fork, spawn, forkserver). Interpreter
start-up under ``spawn`` is inflated by site imports: run it with
``python3 -S`` as well.
"""

import multiprocessing as mp
import os
import time

from harness import check, main


def noop():
    pass


def batch(args):
    ctx = mp.get_context(args.method)
    start = time.perf_counter()
    procs = [ctx.Process(target=noop) for _ in range(args.n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    check(all(p.exitcode == 0 for p in procs), "a child failed")
    return elapsed / args.n * 1e6


def one_after_another(args, target, exitcode):
    ctx = mp.get_context(args.method)
    start = time.perf_counter()
    for _ in range(args.n):
        p = ctx.Process(target=target)
        p.start()
        p.join()
        check(p.exitcode == exitcode, f"exit code {p.exitcode}")
    return (time.perf_counter() - start) / args.n * 1e6


def sequential(args):
    return one_after_another(args, noop, 0)


def fail():
    os._exit(1)


def restart(args):
    return one_after_another(args, fail, 1)


def wait(event):
    event.wait()


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def idle(args):
    ctx = mp.get_context(args.method)
    event = ctx.Event()
    procs = [ctx.Process(target=wait, args=(event,)) for _ in range(args.n)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    total = sum(pss_kib(p.pid) for p in procs)
    event.set()
    for p in procs:
        p.join()
    check(all(p.exitcode == 0 for p in procs), "a child failed")
    return total / args.n


def options(parser):
    parser.add_argument("--method", default="fork")
    parser.add_argument("--n", type=int, default=100)


if __name__ == "__main__":
    main({"batch": batch, "sequential": sequential, "restart": restart, "idle": idle}, options)
