"""CPython multiprocessing baseline: Lock cost, in nanoseconds per
acquire + release.

Workloads:
- uncontended: one process takes and releases an mp.Lock N times.
- contended: P processes each take and release the same lock N times,
  incrementing a shared counter inside (the check that the lock excludes:
  the counter must end at P * N); wall time from the first start to the
  last join, divided by P * N.
"""

import multiprocessing as mp
import time

from harness import check, main


def uncontended(args):
    lock = mp.get_context("fork").Lock()
    acquire, release = lock.acquire, lock.release
    start = time.perf_counter()
    for _ in range(args.n):
        acquire()
        release()
    return (time.perf_counter() - start) / args.n * 1e9


def hammer(lock, counter, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def contended(args):
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    counter = ctx.RawValue("q", 0)
    start = time.perf_counter()
    procs = [
        ctx.Process(target=hammer, args=(lock, counter, args.n)) for _ in range(args.procs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    check(all(p.exitcode == 0 for p in procs), "a child failed")
    check(counter.value == args.procs * args.n, f"counter {counter.value}: the lock did not exclude")
    return elapsed / (args.procs * args.n) * 1e9


def options(parser):
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--procs", type=int, default=2)


if __name__ == "__main__":
    main({"uncontended": uncontended, "contended": contended}, options)
