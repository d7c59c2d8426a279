//! Takes messages from a queue until an empty stop message or the queue is
//! closed, marking each done, checking that each producer's messages arrive
//! in order, then reports its count and checksum on the `results` queue if the
//! run has one.
//!
//! Args: QUEUE [BATCH]. With BATCH > 1 it uses `get-many`.

use corral_guest::{Error, Queue, arg, fnv1a, or_die};

fn main() {
    let queue_name: String = arg(1, "jobs".to_string());
    let batch: u32 = arg(2, 1);
    let queue = or_die("open queue", Queue::open(&queue_name));
    let (mut count, mut sum) = (0u64, 0u64);
    // Messages are "<producer>:<seq>": each producer's must arrive in order.
    let mut last_seen: std::collections::HashMap<String, u64> = Default::default();
    let mut out_of_order = 0u64;
    let mut stopped = false;
    while !stopped {
        let messages = if batch <= 1 {
            match queue.get(None) {
                Ok(m) => vec![m],
                Err(Error::Closed) => break,
                Err(e) => corral_guest::or_die("get", Err(e)),
            }
        } else {
            match queue.get_many(batch, None) {
                Ok(b) => split(&b.data, &b.lengths),
                Err(Error::Closed) => break,
                Err(e) => corral_guest::or_die("get-many", Err(e)),
            }
        };
        // A batch may hold messages after a stop, and more than one stop:
        // process every message, and hand extra stops back for the others.
        let mut stops = 0;
        for message in messages {
            or_die("task-done", queue.task_done());
            if message.is_empty() {
                stops += 1;
                continue;
            }
            count += 1;
            sum = sum.wrapping_add(fnv1a(&message));
            let text = String::from_utf8_lossy(&message);
            if let Some((producer, seq)) = text.rsplit_once(':')
                && let Ok(seq) = seq.parse::<u64>()
            {
                if last_seen.get(producer).is_some_and(|&last| seq <= last) {
                    out_of_order += 1;
                }
                last_seen.insert(producer.to_string(), seq);
            }
        }
        for _ in 1..stops {
            or_die("put stop back", queue.put(&[], None));
        }
        stopped = stops > 0;
    }
    if let Ok(results) = Queue::open("results") {
        or_die(
            "report",
            results.put(format!("consumed {count} {sum}").as_bytes(), None),
        );
    }
    println!("consumed {count} messages (checksum {sum:016x}), {out_of_order} out of order");
}

fn split(data: &[u8], lengths: &[u32]) -> Vec<Vec<u8>> {
    let mut rest = data;
    lengths
        .iter()
        .map(|&n| {
            let (m, tail) = rest.split_at(n as usize);
            rest = tail;
            m.to_vec()
        })
        .collect()
}
