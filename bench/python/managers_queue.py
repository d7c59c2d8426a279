"""CPython baseline for queues shared across hosts: a queue.Queue served by a
multiprocessing.managers server over TCP (127.0.0.1), the standard library's
way to share a queue between machines. Messages per second.

The manager runs in its own process (as a server would); producers and
consumers are separate processes that connect to it over TCP, as clients on
other hosts would. Each message is SIZE bytes whose first 8 hold its
sequence number; consumers count and sum the numbers and the parent checks
both, so a lost or duplicated message fails the run. The clock runs from
the first client start to the last join (the server is up before).

Workloads: q (P producers, C consumers, N messages of SIZE bytes in all).
With --batch B > 1 each put carries a list of B messages.
"""

import multiprocessing as mp
import queue
import time
from multiprocessing.managers import BaseManager

from harness import check, main

AUTHKEY = b"corral-bench"


class QueueManager(BaseManager):
    pass


def serve(port_out, capacity):
    shared = queue.Queue(maxsize=capacity)
    results = queue.Queue()
    QueueManager.register("jobs", callable=lambda: shared)
    QueueManager.register("results", callable=lambda: results)
    manager = QueueManager(address=("127.0.0.1", 0), authkey=AUTHKEY)
    server = manager.get_server()
    port_out.put(server.address[1])
    server.serve_forever()


def connect(port):
    QueueManager.register("jobs")
    QueueManager.register("results")
    manager = QueueManager(address=("127.0.0.1", port), authkey=AUTHKEY)
    manager.connect()
    return manager


def produce(port, first, count, size, batch):
    jobs = connect(port).jobs()
    pad = bytes(size - 8)
    if batch == 1:
        for seq in range(first, first + count):
            jobs.put(seq.to_bytes(8, "little") + pad)
        return
    for lo in range(first, first + count, batch):
        hi = min(lo + batch, first + count)
        jobs.put([seq.to_bytes(8, "little") + pad for seq in range(lo, hi)])


def consume(port, size):
    manager = connect(port)
    jobs, results = manager.jobs(), manager.results()
    count = total = 0
    while True:
        message = jobs.get()
        if message is None:
            break
        for m in message if isinstance(message, list) else (message,):
            if len(m) != size:
                raise AssertionError(f"message of {len(m)} bytes")
            total += int.from_bytes(m[:8], "little")
            count += 1
    results.put((count, total))


def q(args):
    ctx = mp.get_context("fork")
    port_out = ctx.Queue()
    server = ctx.Process(target=serve, args=(port_out, args.capacity), daemon=True)
    server.start()
    port = port_out.get()
    try:
        share = args.n // args.producers
        start = time.perf_counter()
        consumers = [
            ctx.Process(target=consume, args=(port, args.size))
            for _ in range(args.consumers)
        ]
        producers = [
            ctx.Process(target=produce, args=(port, i * share, share, args.size, args.batch))
            for i in range(args.producers)
        ]
        for p in consumers + producers:
            p.start()
        for p in producers:
            p.join()
        manager = connect(port)
        jobs, results = manager.jobs(), manager.results()
        for _ in consumers:
            jobs.put(None)
        got = [results.get() for _ in consumers]
        for p in consumers:
            p.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.join()
    n = share * args.producers
    check(all(p.exitcode == 0 for p in consumers + producers), "a client failed")
    check(sum(c for c, _ in got) == n, f"count {got} != {n}")
    check(sum(t for _, t in got) == n * (n - 1) // 2, "checksum mismatch")
    return n / elapsed


def options(parser):
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--capacity", type=int, default=10_000)


if __name__ == "__main__":
    main({"q": q}, options)
