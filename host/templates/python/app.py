"""{{name}}: a Corral worker. With a QUEUE argument it takes messages from
that queue until an empty stop message (or the queue is closed) and counts
them; without, it says hello."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import environment, process, queue


class Run(exports.Run):
    def run(self) -> None:
        me = process.name()
        # Not sys.argv: that was frozen into the component when it was built.
        args = environment.get_arguments()
        if len(args) < 2:
            print(f"hello from {me}")
            return
        jobs = queue.Queue.open(args[1])
        count = 0
        while True:
            try:
                message = jobs.get(None)
            except Err:
                break  # closed
            jobs.task_done()
            if not message:
                break  # the stop message
            count += 1
        print(f"{me} took {count} messages")
