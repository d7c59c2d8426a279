//! A hostile worker for the IPC limits tests: each mode abuses one IPC call
//! and reports what it got.
//!
//! - `put-many-empty QUEUE N`: one `put-many` of N zero-length messages (a
//!   batch that costs the guest 4 bytes a message), report the result.
//! - `try-get-loop QUEUE SECONDS`: call `try-get` in a tight loop for
//!   SECONDS, then report how many calls returned and how many failed.

use std::time::{Duration, Instant};

use corral_guest::{Batch, Queue, arg, or_die};

fn main() {
    let mode: String = arg(1, String::new());
    let queue = or_die("open", Queue::open(&arg::<String>(2, String::new())));
    match mode.as_str() {
        "put-many-empty" => {
            let n: usize = arg(3, 0);
            let batch = Batch {
                lengths: vec![0; n],
                data: Vec::new(),
            };
            println!("{:?} len={}", queue.put_many(&batch, None), queue.len());
        }
        "try-get-loop" => {
            let until = Instant::now() + Duration::from_secs(arg(3, 1));
            let (mut calls, mut failed) = (0u64, 0u64);
            while Instant::now() < until {
                calls += 1;
                if queue.try_get().is_err() {
                    failed += 1;
                }
            }
            println!("calls {calls}, failed {failed}");
        }
        other => {
            eprintln!("unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}
