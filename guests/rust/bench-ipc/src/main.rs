//! The guest side of `make bench` for queues, pipes and locks: one worker
//! per role, driven by the host bench (`host/benches/compare/ipc.rs`).
//!
//! Every message is SIZE bytes whose first 8 hold its sequence number, so a
//! receiver checks each message and sums the numbers: the host compares the
//! count and the sum with what was sent, and a lost or duplicated message
//! fails the run. Roles (first argument):
//!
//! - `put QUEUE FIRST N SIZE BATCH`: puts messages FIRST..FIRST+N, BATCH at a
//!   time with `put-many` when BATCH > 1.
//! - `get QUEUE SIZE BATCH`: takes messages (up to BATCH per `get-many`)
//!   until the queue is closed; prints `got COUNT SUM`.
//! - `ping PIPE N SIZE`: one untimed round trip, then N timed ones, each echo
//!   checked; prints `rtt NANOS` per round trip, timed in the guest.
//! - `echo PIPE`: sends back every message until the other end closes.
//! - `send PIPE N SIZE`: sends N messages, then closes.
//! - `recv PIPE SIZE`: receives until the other end closes; prints
//!   `got COUNT SUM`.
//! - `lock NAME N`: takes and releases the lock N times; prints `lock NANOS`
//!   per acquire + release, timed in the guest.
//! - `call NAME N`: holds the lock and asks its guard for the fencing token
//!   N times: the cheapest host call there is (a borrowed handle in, a u64
//!   out), the floor under every other row; prints `call NANOS` per call.

use std::time::Instant;

use corral_guest::{Batch, Endpoint, Error, Lock, Queue, arg, exit, or_die};

fn main() {
    let role: String = arg(1, String::new());
    match role.as_str() {
        "put" => put(),
        "get" => get(),
        "ping" => ping(),
        "echo" => echo(),
        "send" => send(),
        "recv" => recv(),
        "lock" => lock(),
        "call" => call(),
        other => {
            eprintln!("unknown role {other:?}");
            exit(2)
        }
    }
}

/// A message of `size` bytes carrying `seq`, written into `buf` in place.
fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number of a received message, after checking its size.
fn seq_of(message: &[u8], size: usize) -> u64 {
    if message.len() != size {
        eprintln!("message of {} bytes, expected {size}", message.len());
        exit(1);
    }
    u64::from_le_bytes(message[..8].try_into().expect("8 bytes"))
}

fn put() {
    let queue = or_die("open queue", Queue::open(&arg::<String>(2, "q".into())));
    let (first, n, size, batch): (u64, u64, usize, usize) =
        (arg(3, 0), arg(4, 0), arg(5, 64).max(8), arg(6, 1).max(1));
    if batch == 1 {
        let mut buf = vec![0u8; size];
        for seq in first..first + n {
            stamp(&mut buf, seq);
            or_die("put", queue.put(&buf, None));
        }
        return;
    }
    let mut seq = first;
    let mut messages = Batch {
        data: Vec::new(),
        lengths: Vec::new(),
    };
    while seq < first + n {
        let count = batch.min((first + n - seq) as usize);
        messages.data.resize(count * size, 0);
        messages.lengths.clear();
        messages.lengths.resize(count, size as u32);
        for chunk in messages.data.chunks_mut(size) {
            stamp(chunk, seq);
            seq += 1;
        }
        or_die("put-many", queue.put_many(&messages, None));
    }
}

fn get() {
    let queue = or_die("open queue", Queue::open(&arg::<String>(2, "q".into())));
    let (size, batch): (usize, u32) = (arg(3, 64), arg(4, 1).max(1));
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        if batch == 1 {
            match queue.get(None) {
                Ok(message) => {
                    sum = sum.wrapping_add(seq_of(&message, size));
                    count += 1;
                }
                Err(Error::Closed) => break,
                Err(e) => or_die("get", Err(e)),
            }
        } else {
            match queue.get_many(batch, None) {
                Ok(messages) => {
                    for message in corral_guest::split_batch(&messages) {
                        sum = sum.wrapping_add(seq_of(message, size));
                        count += 1;
                    }
                }
                Err(Error::Closed) => break,
                Err(e) => or_die("get-many", Err(e)),
            }
        }
    }
    println!("got {count} {sum}");
}

fn ping() {
    let end = or_die("open pipe", Endpoint::open(&arg::<String>(2, "p".into())));
    let (n, size): (u64, usize) = (arg(3, 1000), arg(4, 64).max(8));
    let mut buf = vec![0u8; size];
    or_die("send", end.send(&buf, None));
    or_die("recv", end.recv(None));
    let start = Instant::now();
    for seq in 0..n {
        stamp(&mut buf, seq);
        or_die("send", end.send(&buf, None));
        let reply = or_die("recv", end.recv(None));
        if reply != buf {
            eprintln!("round trip {seq}: wrong echo");
            exit(1);
        }
    }
    let nanos = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    end.close();
    println!("rtt {nanos:.1}");
}

fn echo() {
    let end = or_die("open pipe", Endpoint::open(&arg::<String>(2, "p".into())));
    loop {
        match end.recv(None) {
            Ok(message) => or_die("send", end.send(&message, None)),
            Err(Error::Closed) => return,
            Err(e) => or_die("recv", Err(e)),
        }
    }
}

fn send() {
    let end = or_die("open pipe", Endpoint::open(&arg::<String>(2, "p".into())));
    let (n, size): (u64, usize) = (arg(3, 1000), arg(4, 64).max(8));
    let mut buf = vec![0u8; size];
    for seq in 0..n {
        stamp(&mut buf, seq);
        or_die("send", end.send(&buf, None));
    }
    end.close();
}

fn recv() {
    let end = or_die("open pipe", Endpoint::open(&arg::<String>(2, "p".into())));
    let size: usize = arg(3, 64);
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        match end.recv(None) {
            Ok(message) => {
                sum = sum.wrapping_add(seq_of(&message, size));
                count += 1;
            }
            Err(Error::Closed) => break,
            Err(e) => or_die("recv", Err(e)),
        }
    }
    println!("got {count} {sum}");
}

fn lock() {
    let lock = or_die("open lock", Lock::open(&arg::<String>(2, "l".into())));
    let n: u64 = arg(3, 1000);
    let start = Instant::now();
    for _ in 0..n {
        drop(or_die("acquire", lock.acquire(None)));
    }
    let nanos = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("lock {nanos:.1}");
}

fn call() {
    let lock = or_die("open lock", Lock::open(&arg::<String>(2, "l".into())));
    let n: u64 = arg(3, 1000);
    let guard = or_die("acquire", lock.acquire(None));
    let first = guard.fencing_token();
    let start = Instant::now();
    for _ in 0..n {
        if guard.fencing_token() != first {
            eprintln!("the fencing token changed while the lock was held");
            exit(1);
        }
    }
    let nanos = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("call {nanos:.1}");
}
