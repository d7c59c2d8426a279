"""Puts N messages `<name>:<i>` on a queue, then STOPS empty messages (one
stop sentinel per consumer), and prints `produced N messages (checksum X)`.
The producer of the cross-language pipeline (examples/languages.toml).

Args: QUEUE N [STOPS]."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import process, queue

from corral_util import arg, die, fnv1a


class Run(exports.Run):
    def run(self) -> None:
        name = arg(1, "jobs")
        n = arg(2, 1000)
        stops = arg(3, 0)
        me = process.name()
        try:
            jobs = queue.Queue.open(name)
            total = 0
            for i in range(n):
                message = f"{me}:{i}".encode()
                total = (total + fnv1a(message)) & 0xFFFFFFFFFFFFFFFF
                jobs.put(message, None)
            for _ in range(stops):
                jobs.put(b"", None)
        except Err as e:
            die("queue", e)
        print(f"produced {n} messages (checksum {total:016x})")
