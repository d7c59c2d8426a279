"""Helpers every Python guest in this repository shares, mirroring the Rust
SDK's (guests/rust/sdk): arguments, exit codes, FNV-1a, fatal errors."""

from componentize_py_types import Err
from wit_world.imports import environment, exit as wasi_exit


def arg(n, default):
    """The `n`th argument after argv[0], converted like `default`, or `default`.

    The arguments come from wasi:cli at run time: `sys.argv` would be the
    build machine's, frozen into the component when it was pre-initialised.
    """
    args = environment.get_arguments()
    if n >= len(args):
        return default
    try:
        return type(default)(args[n])
    except ValueError:
        return default


def fnv1a(data: bytes) -> int:
    """FNV-1a of a message: summed over messages, an order-independent
    checksum that changes if any message is lost or duplicated."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def die(what, error, code=2):
    """Reports `what` failed and why, then ends the worker with `code`."""
    detail = error.value if isinstance(error, Err) else error
    print(f"{what}: {detail}", flush=True)
    wasi_exit.exit_with_code(code)
