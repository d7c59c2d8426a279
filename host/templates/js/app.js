// {{name}}: a Corral worker. With a QUEUE argument it takes messages from
// that queue until an empty stop message (or the queue is closed) and
// counts them; without, it says hello.
import { name } from 'corral:worker/process@0.1.0';
import { Queue } from 'corral:worker/queue@0.1.0';
import { getArguments } from 'wasi:cli/environment@0.2.12';

function main() {
  const me = name();
  const args = getArguments();
  if (args.length < 2) {
    console.log(`hello from ${me}`);
    return;
  }
  const queue = Queue.open(args[1]);
  let count = 0;
  for (;;) {
    let message;
    try {
      message = queue.get(undefined);
    } catch {
      break; // closed
    }
    queue.taskDone();
    if (message.length === 0) break; // the stop message
    count += 1;
  }
  console.log(`${me} took ${count} messages`);
}

export const run = { run: main };
