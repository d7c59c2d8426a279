"""CPython baseline: the classic TCP echo server on ``select()``.

One process, one ``select()`` over the listener and every client socket;
each readable client is read and its bytes sent straight back.

Two ways to run it:

- ``python3 echo_select.py --listen``: serve on 127.0.0.1, on a free port
  printed as one line on stdout, until stdin closes or ``--max-seconds``
  pass. The Rust bench (``host/benches/compare/net.rs``) drives it with the
  same client, in the same way, as Corral's echo server worker, and checks
  every echoed byte.
- ``python3 echo_select.py rtt --inflight K --runs 5`` (see harness.py): the
  server in a child process and this file's Python client: K connections,
  each with one 64-byte message in flight, N round trips in all, every echo
  checked; round trips per second.
"""

import multiprocessing as mp
import os
import select
import selectors
import socket
import sys
import time

from harness import check, main

MAX_SECONDS = 600


def serve_select(listener, stop_fd, max_seconds):
    """Echoes until ``stop_fd`` reaches end of file or time runs out."""
    sockets = [listener, stop_fd]
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select(sockets, [], [], 1.0)
        for s in readable:
            if s is listener:
                conn, _ = listener.accept()
                sockets.append(conn)
            elif s is stop_fd:
                if not os.read(stop_fd, 4096):
                    return
            else:
                data = s.recv(65536)
                if data:
                    s.sendall(data)
                else:
                    sockets.remove(s)
                    s.close()


def listen():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    return listener


def serve_listen(serve):
    """``--listen``: announce the port, serve until stdin closes."""
    listener = listen()
    print(listener.getsockname()[1], flush=True)
    serve(listener, sys.stdin.fileno(), MAX_SECONDS)


def client(port, inflight, n, size=64):
    """Round trips per second over ``inflight`` connections, each with one
    message in flight, ``n`` round trips in all; every echo checked."""
    per_conn = n // inflight
    sel = selectors.DefaultSelector()
    conns = []
    for c in range(inflight):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conns.append(s)
    state = {}
    start = time.perf_counter()
    for c, s in enumerate(conns):
        message = bytes([(c + i) % 256 for i in range(size)])
        state[s] = [message, b"", 0]
        s.sendall(message)
        sel.register(s, selectors.EVENT_READ)
    done = 0
    while done < inflight:
        for key, _ in sel.select(timeout=10):
            s = key.fileobj
            st = state[s]
            st[1] += s.recv(size - len(st[1]))
            if len(st[1]) < size:
                continue
            check(st[1] == st[0], "wrong echo")
            st[1] = b""
            st[2] += 1
            if st[2] == per_conn:
                sel.unregister(s)
                done += 1
            else:
                st[0] = st[2].to_bytes(8, "little") + st[0][8:]
                s.sendall(st[0])
    elapsed = time.perf_counter() - start
    for s in conns:
        s.close()
    return per_conn * inflight / elapsed


def serve_child(serve, listener, stop_read, stop_write):
    # The child's copy of the write end would keep its stop pipe open.
    os.close(stop_write)
    serve(listener, stop_read, MAX_SECONDS)


def run_against(serve, args):
    """Starts ``serve`` in a child process and measures it with ``client``."""
    listener = listen()
    port = listener.getsockname()[1]
    stop_read, stop_write = os.pipe()
    child = mp.get_context("fork").Process(
        target=serve_child, args=(serve, listener, stop_read, stop_write)
    )
    child.start()
    listener.close()
    os.close(stop_read)
    try:
        return client(port, args.inflight, args.n)
    finally:
        os.close(stop_write)
        child.join(10)
        check(child.exitcode == 0, "echo server failed")


def options(parser):
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--n", type=int, default=20_000)


if __name__ == "__main__":
    if sys.argv[1:] == ["--listen"]:
        serve_listen(serve_select)
    else:
        main({"rtt": lambda args: run_against(serve_select, args)}, options)
