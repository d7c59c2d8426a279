//! The guest side of `tests/scale_out.rs`: workers of several hosts sharing
//! queues and locks through Redis. Roles (first argument):
//!
//! - `relay IN OUT BATCH [PAUSE_MS]`: takes messages from IN (up to BATCH
//!   at a time), puts each on OUT, waits PAUSE_MS, then marks them done on
//!   IN, until IN is closed. A message whose relay dies before `task-done`
//!   reaches OUT again through another relay (acknowledged mode): the
//!   reader deduplicates. The pause makes a kill land in that window.
//! - `count LOCK N`: N times: take LOCK, check that nobody else is inside
//!   (the `busy` event is clear and the single message of the `counter`
//!   queue is there), add one to that counter, put the guard's fencing
//!   token on `fences`, release. Prints `counted N overlaps K` and exits 1
//!   if any section overlapped or a token did not grow.
//! - `hold LOCK`: takes LOCK, prints `holding FENCE`, then waits forever
//!   (its host is killed with the lock held).

use corral_guest::{Error, Event, Lock, Queue, arg, exit, ms, or_die, split_batch};

fn main() {
    let role: String = arg(1, String::new());
    match role.as_str() {
        "relay" => relay(),
        "count" => count(),
        "hold" => hold(),
        other => {
            eprintln!("unknown role {other:?}");
            exit(2)
        }
    }
}

fn relay() {
    let input = or_die("open in", Queue::open(&arg::<String>(2, "jobs".into())));
    let output = or_die("open out", Queue::open(&arg::<String>(3, "out".into())));
    let batch: u32 = arg(4, 1).max(1);
    let pause = std::time::Duration::from_millis(arg(5, 0));
    let mut relayed = 0u64;
    loop {
        let messages = match input.get_many(batch, None) {
            Ok(messages) => messages,
            Err(Error::Closed) => break,
            Err(e) => or_die("get-many", Err(e)),
        };
        or_die("put-many", output.put_many(&messages, None));
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        for _ in split_batch(&messages) {
            or_die("task-done", input.task_done());
            relayed += 1;
        }
    }
    println!("relayed {relayed}");
}

fn count() {
    let lock = or_die("open lock", Lock::open(&arg::<String>(2, "l".into())));
    let n: u64 = arg(3, 100);
    let busy = or_die("open busy", Event::open("busy"));
    let counter = or_die("open counter", Queue::open("counter"));
    let fences = or_die("open fences", Queue::open("fences"));
    let (mut overlaps, mut last_fence) = (0u64, 0u64);
    for _ in 0..n {
        let guard = or_die("acquire", lock.acquire(ms(30_000)));
        let fence = guard.fencing_token();
        if fence <= last_fence {
            eprintln!("fencing token {fence} after {last_fence}");
            exit(1);
        }
        last_fence = fence;
        if or_die("is-set", Ok(busy.is_set())) {
            overlaps += 1;
        }
        or_die("set", busy.set());
        match or_die("try-get", counter.try_get()) {
            Some(value) => {
                let v = u64::from_le_bytes(value.try_into().expect("8 bytes"));
                or_die("task-done", counter.task_done());
                or_die("put", counter.put(&(v + 1).to_le_bytes(), ms(5_000)));
            }
            // Someone else holds the counter: they are inside too.
            None => overlaps += 1,
        }
        or_die("put fence", fences.put(&fence.to_le_bytes(), ms(5_000)));
        or_die("clear", busy.clear());
        drop(guard);
    }
    println!("counted {n} overlaps {overlaps}");
    if overlaps > 0 {
        exit(1);
    }
}

fn hold() {
    let lock = or_die("open lock", Lock::open(&arg::<String>(2, "l".into())));
    let guard = or_die("acquire", lock.acquire(ms(30_000)));
    println!("holding {}", guard.fencing_token());
    // Until the host is killed: the test does not wait this long.
    std::thread::sleep(std::time::Duration::from_secs(300));
    drop(guard);
}
