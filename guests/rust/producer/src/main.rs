//! Puts N messages `"<name>:<i>"` on a queue, then `stops` empty messages
//! (one stop sentinel per consumer, the classic pattern), then reports its
//! count and checksum on the `results` queue if the run has one.
//!
//! Args: QUEUE N [STOPS] [BATCH]. With BATCH > 1 it uses `put-many`.

use corral_guest::{Batch, Queue, arg, fnv1a, or_die, process};

fn main() {
    let queue_name: String = arg(1, "jobs".to_string());
    let n: u64 = arg(2, 1000);
    let stops: u32 = arg(3, 0);
    let batch: usize = arg(4, 1);
    let me = process::name();
    let queue = or_die("open queue", Queue::open(&queue_name));
    let mut sum = 0u64;
    let mut pending: Vec<String> = Vec::new();
    for i in 0..n {
        let message = format!("{me}:{i}");
        sum = sum.wrapping_add(fnv1a(message.as_bytes()));
        if batch <= 1 {
            or_die("put", queue.put(message.as_bytes(), None));
        } else {
            pending.push(message);
            if pending.len() == batch {
                put_batch(&queue, &mut pending);
            }
        }
    }
    put_batch(&queue, &mut pending);
    for _ in 0..stops {
        or_die("put stop", queue.put(&[], None));
    }
    if let Ok(results) = Queue::open("results") {
        or_die(
            "report",
            results.put(format!("produced {n} {sum}").as_bytes(), None),
        );
    }
    println!("produced {n} messages (checksum {sum:016x})");
}

fn put_batch(queue: &Queue, pending: &mut Vec<String>) {
    if pending.is_empty() {
        return;
    }
    let batch = Batch {
        lengths: pending.iter().map(|m| m.len() as u32).collect(),
        data: pending.concat().into_bytes(),
    };
    or_die("put-many", queue.put_many(&batch, None));
    pending.clear();
}
