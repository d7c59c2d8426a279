"""CPython baseline: single file operations, in nanoseconds per operation,
on a file in /dev/shm when there is one (Corral's tree is in memory).

Workloads (as Corral's ``fs-bench`` guest does them):
- rw: seek to 0, write 4 KiB, seek to 0, read them back (unbuffered file;
  each round writes another byte value, the first and last byte read are
  checked);
- stat: ``os.stat`` of the file;
- open: ``open`` the file for reading and close it.
"""

import os
import tempfile
import time

from harness import check, main


def timed(args, op):
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="corral-bench-", dir=where)
    os.close(fd)
    try:
        with open(path, "r+b", buffering=0) as f:
            block = bytearray(4096)
            back = bytearray(4096)

            def rw(i):
                block[:] = bytes([i & 0xFF]) * 4096
                f.seek(0)
                f.write(block)
                f.seek(0)
                check(f.readinto(back) == 4096, "short read")
                check(back[0] == i & 0xFF and back[4095] == i & 0xFF, "read other bytes")

            def stat(_):
                check(os.path.isfile(path), "not a file")

            def open_close(_):
                open(path, "rb", buffering=0).close()

            run = {"rw": rw, "stat": stat, "open": open_close}[op]
            run(0)
            start = time.perf_counter()
            for i in range(1, args.n + 1):
                run(i)
            return (time.perf_counter() - start) / args.n * 1e9
    finally:
        os.unlink(path)


def configure(parser):
    parser.add_argument("--n", type=int, default=20000)


if __name__ == "__main__":
    main(
        {
            "rw": lambda a: timed(a, "rw"),
            "stat": lambda a: timed(a, "stat"),
            "open": lambda a: timed(a, "open"),
        },
        configure,
    )
