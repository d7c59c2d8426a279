"""CPython multiprocessing baseline: Pipe latency and bandwidth.

Both use ``multiprocessing.Pipe()`` (duplex) with send_bytes/recv_bytes, the
fastest way to move bytes through it (no pickling).

Workloads:
- rtt: microseconds per round trip of a SIZE-byte message to an echoing
  child, timed in the parent after one untimed exchange; every echo checked.
- bw: MiB per second from a sending child to the parent, N messages of SIZE
  bytes, from the child's start to its join; every message's size and
  sequence number checked.
"""

import multiprocessing as mp
import time

from harness import check, main


def echo(conn):
    while True:
        message = conn.recv_bytes()
        if not message:
            return
        conn.send_bytes(message)


def rtt(args):
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=echo, args=(there,))
    child.start()
    pad = bytes(args.size - 8)
    here.send_bytes(bytes(args.size))
    here.recv_bytes()
    start = time.perf_counter()
    for seq in range(args.n):
        message = seq.to_bytes(8, "little") + pad
        here.send_bytes(message)
        if here.recv_bytes() != message:
            raise AssertionError(f"round trip {seq}: wrong echo")
    elapsed = time.perf_counter() - start
    here.send_bytes(b"")
    child.join()
    check(child.exitcode == 0, "echo child failed")
    return elapsed / args.n * 1e6


def send(conn, n, size):
    buf = bytearray(size)
    for seq in range(n):
        buf[:8] = seq.to_bytes(8, "little")
        conn.send_bytes(buf)
    conn.close()


def bw(args):
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    start = time.perf_counter()
    child = ctx.Process(target=send, args=(there, args.n, args.size))
    child.start()
    there.close()
    for seq in range(args.n):
        message = here.recv_bytes()
        check(len(message) == args.size, f"message of {len(message)} bytes")
        check(int.from_bytes(message[:8], "little") == seq, f"message {seq} out of order")
    child.join()
    elapsed = time.perf_counter() - start
    check(child.exitcode == 0, "sender failed")
    return args.n * args.size / elapsed / (1 << 20)


def options(parser):
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)


if __name__ == "__main__":
    main({"rtt": rtt, "bw": bw}, options)
