"""Appends N lines to a shared file, the classic way: open for writing, find
the end, write the line there in two writes (as buffered I/O may). Under the
lock that is safe; without it (LOCK = `-`) workers overwrite each other's
lines. Each line is `<name>:<seq>:<check>`, check a hash of the rest, so
guests/rust/linecheck can tell intact lines from torn ones.

Args: PATH LOCK N."""

import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import lock, process

from corral_util import arg, die, fnv1a


def append(fd, line):
    head, tail = line[: len(line) // 2], line[len(line) // 2 :]
    # Find the end, then write there, in two writes. Not lseek + write: the
    # wasi-libc under componentize-py 0.25 keeps writing where the fd's
    # first write stream left off after an lseek (see docs/guests.md).
    end = os.fstat(fd).st_size
    os.pwrite(fd, head, end)
    os.pwrite(fd, tail, end + len(head))


class Run(exports.Run):
    def run(self) -> None:
        path = arg(1, "/log.txt")
        lock_name = arg(2, "file")
        n = arg(3, 100)
        me = process.name()
        try:
            the_lock = None if lock_name == "-" else lock.Lock.open(lock_name)
        except Err as e:
            die("open lock", e)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        except OSError as e:
            die(f"cannot open {path}", e)
        for i in range(n):
            body = f"{me}:{i:06}"
            line = f"{body}:{fnv1a(body.encode()):016x}\n".encode()
            try:
                if the_lock is None:
                    append(fd, line)
                else:
                    # Leaving the block drops the guard: the lock is released.
                    with the_lock.acquire(None):
                        append(fd, line)
            except Err as e:
                die("acquire", e)
            except OSError as e:
                die(f"append to {path} failed", e, 1)
        os.close(fd)
        print(f"appended {n} lines to {path}")
