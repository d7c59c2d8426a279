"""The classic pool task: a decimal integer in, its square out."""

from componentize_py_types import Err
from wit_world import exports

I64 = 1 << 63


class Task(exports.Task):
    def handle(self, input: bytes) -> bytes:
        try:
            x = int(input.decode().strip())
        except (UnicodeDecodeError, ValueError):
            raise Err(f"not an integer: {input!r}")
        if not -I64 <= x < I64:
            raise Err(f"{x} is out of the i64 range")
        squared = x * x
        if squared >= I64:
            raise Err(f"{x} squared overflows i64")
        return str(squared).encode()
