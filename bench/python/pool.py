"""CPython multiprocessing baseline: Pool throughput, in tasks per second.

The task squares an integer (Corral's `square` guest does the same on
decimal text). The pool is started before the clock and closed after it, so
the figure is the steady throughput of the pool, as Corral's is.

Workloads:
- map1: pool.map(square, inputs, chunksize=1)
- map: pool.map(square, inputs) with Python's default chunking
- apply_async: one apply_async per input, then get() every result
- fresh: chunksize=1 with maxtasksperchild=1 (a new process per task: the
  isolation of Corral's fresh instance per task)
"""

import multiprocessing as mp
import time

from harness import check, main


def square(x):
    return x * x


def timed_pool(args, body, maxtasksperchild=None):
    inputs = list(range(args.n))
    with mp.get_context("fork").Pool(args.workers, maxtasksperchild=maxtasksperchild) as pool:
        start = time.perf_counter()
        results = body(pool, inputs)
        elapsed = time.perf_counter() - start
        pool.close()
        pool.join()
    check(results == [x * x for x in inputs], "wrong or missing results")
    return args.n / elapsed


def map1(args):
    return timed_pool(args, lambda pool, xs: pool.map(square, xs, chunksize=1))


def map_default(args):
    return timed_pool(args, lambda pool, xs: pool.map(square, xs))


def apply_async(args):
    def body(pool, xs):
        pending = [pool.apply_async(square, (x,)) for x in xs]
        return [p.get() for p in pending]

    return timed_pool(args, body)


def fresh(args):
    return timed_pool(args, lambda pool, xs: pool.map(square, xs, chunksize=1), maxtasksperchild=1)


def options(parser):
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)


if __name__ == "__main__":
    main(
        {"map1": map1, "map": map_default, "apply_async": apply_async, "fresh": fresh},
        options,
    )
