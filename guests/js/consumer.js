// Takes messages from a queue until an empty stop message or the queue is
// closed, marking each done and checking that each producer's messages
// arrive in order, then prints `consumed N messages (checksum X), K out of
// order` and reports `consumed N SUM` on the `results` queue if the run has
// one. Args: QUEUE [BATCH]. With BATCH > 1 it uses `get-many`.
import { Queue } from 'corral:worker/queue@0.1.0';
import { arg, corralError, die, fnv1a, hex16, wrappingAdd } from './util.js';

function split(batch) {
  const messages = [];
  let offset = 0;
  for (const n of batch.lengths) {
    messages.push(batch.data.subarray(offset, offset + n));
    offset += n;
  }
  return messages;
}

function consume() {
  const name = arg(1, 'jobs');
  const batch = arg(2, 1);
  let jobs;
  try {
    jobs = Queue.open(name);
  } catch (e) {
    die('open queue', e);
  }
  const decoder = new TextDecoder();
  const lastSeen = new Map();
  let count = 0;
  let sum = 0n;
  let outOfOrder = 0;
  for (let stopped = false; !stopped; ) {
    let messages;
    try {
      messages = batch <= 1 ? [jobs.get(undefined)] : split(jobs.getMany(batch, undefined));
    } catch (e) {
      if (corralError(e)?.tag === 'closed') break;
      die('get', e);
    }
    // A batch may hold messages after a stop, and more than one stop:
    // process every message, and hand extra stops back for the others.
    let stops = 0;
    for (const message of messages) {
      jobs.taskDone();
      if (message.length === 0) {
        stops += 1;
        continue;
      }
      count += 1;
      sum = wrappingAdd(sum, fnv1a(message));
      const text = decoder.decode(message);
      const colon = text.lastIndexOf(':');
      const seq = Number(text.slice(colon + 1));
      if (colon >= 0 && Number.isInteger(seq)) {
        const producer = text.slice(0, colon);
        if (lastSeen.has(producer) && seq <= lastSeen.get(producer)) outOfOrder += 1;
        lastSeen.set(producer, seq);
      }
    }
    for (let i = 1; i < stops; i++) jobs.put(new Uint8Array(), undefined);
    stopped = stops > 0;
  }
  try {
    Queue.open('results').put(new TextEncoder().encode(`consumed ${count} ${sum}`), undefined);
  } catch {
    // No `results` queue in this run: nobody to report to.
  }
  console.log(`consumed ${count} messages (checksum ${hex16(sum)}), ${outOfOrder} out of order`);
}

export const run = { run: consume };
