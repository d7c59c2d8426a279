"""CPython baseline: a TCP echo server on asyncio streams, the event-driven
way (``asyncio.start_server``, one coroutine per client).

Run like echo_select.py, whose client it shares:

- ``python3 echo_asyncio.py --listen``: serve on 127.0.0.1, on a free port
  printed as one line on stdout, until stdin closes or time runs out; the
  Rust bench drives it.
- ``python3 echo_asyncio.py rtt --inflight K --runs 5``: server in a child
  process, Python client; round trips per second, every echo checked.
"""

import asyncio
import sys

from echo_select import listen, main, options, run_against, serve_listen


def serve_asyncio(listener, stop_fd, max_seconds):
    """Echoes until ``stop_fd`` reaches end of file or time runs out."""

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def serve():
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()

        def on_stop():
            import os

            if not os.read(stop_fd, 4096) and not stopped.done():
                stopped.set_result(None)

        loop.add_reader(stop_fd, on_stop)
        server = await asyncio.start_server(echo, sock=listener)
        async with server:
            try:
                await asyncio.wait_for(stopped, max_seconds)
            except asyncio.TimeoutError:
                pass

    asyncio.run(serve())


if __name__ == "__main__":
    if sys.argv[1:] == ["--listen"]:
        serve_listen(serve_asyncio)
    else:
        main({"rtt": lambda args: run_against(serve_asyncio, args)}, options)
