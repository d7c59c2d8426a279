"""CPython multiprocessing baseline for spawn + join.

Measures, per start method, the time per process to start and join it, one at
a time and N at once, over several runs, and checks every exit code. Prints
one JSON object: {"<method>": {"sequential_us": [...], "batch_us": [...]}},
plus "idle_pss_kib" (memory per idle forked child) with --idle N.
"""

import argparse
import json
import multiprocessing as mp
import time


def noop():
    pass


def sequential(ctx, n):
    start = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        assert p.exitcode == 0, p.exitcode
    return (time.perf_counter() - start) / n * 1e6


def batch(ctx, n):
    start = time.perf_counter()
    procs = [ctx.Process(target=noop) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    return (time.perf_counter() - start) / n * 1e6


def wait(event):
    event.wait()


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def idle(n):
    """PSS per idle forked child, in KiB: what each extra process really costs."""
    ctx = mp.get_context("fork")
    event = ctx.Event()
    procs = [ctx.Process(target=wait, args=(event,)) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    total = sum(pss_kib(p.pid) for p in procs)
    event.set()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    return total / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="fork,spawn")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=int, default=0, help="also measure N idle children")
    args = parser.parse_args()
    result = {}
    for method in args.methods.split(","):
        ctx = mp.get_context(method)
        n = args.n if method == "fork" else max(args.n // 5, 10)
        sequential(ctx, min(n, 10))  # warm-up
        result[method] = {
            "n": n,
            "sequential_us": [sequential(ctx, n) for _ in range(args.runs)],
            "batch_us": [batch(ctx, n) for _ in range(args.runs)],
        }
    if args.idle:
        result["idle_pss_kib"] = [idle(args.idle) for _ in range(3)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
