"""Takes messages from a queue until an empty stop message or the queue is
closed, marking each done and checking that each producer's messages arrive
in order, then prints `consumed N messages (checksum X), K out of order`
and reports `consumed N SUM` on the `results` queue if the run has one.

Args: QUEUE [BATCH]. With BATCH > 1 it uses `get-many`."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import queue
from wit_world.imports.corral_worker_types import Error_Closed

from corral_util import arg, die, fnv1a


def split(batch):
    messages, offset = [], 0
    for n in batch.lengths:
        messages.append(batch.data[offset : offset + n])
        offset += n
    return messages


class Run(exports.Run):
    def run(self) -> None:
        name = arg(1, "jobs")
        batch = arg(2, 1)
        try:
            jobs = queue.Queue.open(name)
        except Err as e:
            die("open queue", e)
        count, total, out_of_order = 0, 0, 0
        last_seen = {}
        stopped = False
        while not stopped:
            try:
                messages = [jobs.get(None)] if batch <= 1 else split(jobs.get_many(batch, None))
            except Err as e:
                if isinstance(e.value, Error_Closed):
                    break
                die("get", e)
            # A batch may hold messages after a stop, and more than one stop:
            # process every message, and hand extra stops back for the others.
            stops = 0
            for message in messages:
                jobs.task_done()
                if not message:
                    stops += 1
                    continue
                count += 1
                total = (total + fnv1a(message)) & 0xFFFFFFFFFFFFFFFF
                producer, _, seq = message.decode("utf-8", "replace").rpartition(":")
                if seq.isdigit():
                    if producer in last_seen and int(seq) <= last_seen[producer]:
                        out_of_order += 1
                    last_seen[producer] = int(seq)
            for _ in range(1, stops):
                jobs.put(b"", None)
            stopped = stops > 0
        try:
            results = queue.Queue.open("results")
            results.put(f"consumed {count} {total}".encode(), None)
        except Err:
            pass
        print(f"consumed {count} messages (checksum {total:016x}), {out_of_order} out of order")
