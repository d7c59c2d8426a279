"""CPython multiprocessing baseline: Queue throughput, in messages per second.

Producers and consumers are separate processes around one mp.Queue created
by the parent and passed to them. Each message is SIZE bytes whose first 8
hold its sequence number; consumers count messages and sum the sequence
numbers, and the parent checks both totals, so a lost or duplicated message
fails the run. The clock runs from the first start to the last join.

Workloads: q (P producers, C consumers, N messages of SIZE bytes in all).
With --batch B > 1 each put carries a list of B messages: CPython's way to
batch (Corral's is put-many/get-many).
"""

import multiprocessing as mp
import time

from harness import check, main


def produce(queue, first, count, size, batch):
    pad = bytes(size - 8)
    if batch == 1:
        for seq in range(first, first + count):
            queue.put(seq.to_bytes(8, "little") + pad)
        return
    for lo in range(first, first + count, batch):
        hi = min(lo + batch, first + count)
        queue.put([seq.to_bytes(8, "little") + pad for seq in range(lo, hi)])


def consume(queue, results, size):
    count = total = 0
    while True:
        message = queue.get()
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
    queue, results = ctx.Queue(), ctx.Queue()
    share = args.n // args.producers
    start = time.perf_counter()
    consumers = [
        ctx.Process(target=consume, args=(queue, results, args.size))
        for _ in range(args.consumers)
    ]
    producers = [
        ctx.Process(target=produce, args=(queue, i * share, share, args.size, args.batch))
        for i in range(args.producers)
    ]
    for p in consumers + producers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        queue.put(None)
    # Results before joins: a child that put on a queue exits only once the
    # queue's feeder thread has flushed it.
    got = [results.get() for _ in consumers]
    for p in consumers:
        p.join()
    elapsed = time.perf_counter() - start
    n = share * args.producers
    check(all(p.exitcode == 0 for p in consumers + producers), "a child failed")
    check(sum(c for c, _ in got) == n, f"count {got} != {n}")
    check(sum(t for _, t in got) == n * (n - 1) // 2, "checksum mismatch")
    return n / elapsed


def options(parser):
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--producers", type=int, default=1)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)


if __name__ == "__main__":
    main({"q": q}, options)
