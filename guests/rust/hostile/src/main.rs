//! A hostile worker for the isolation tests: each mode tries to abuse the
//! host in one way and reports what it got.
//!
//! - `stdout-flood BYTES`: write BYTES bytes to stdout, then say `done`.
//! - `queue-flood QUEUE`: put until the queue refuses, report how many.
//! - `lock-spin LOCK`: take the lock, then spin forever.
//! - `connect ADDR`: open a TCP connection, report the error.
//! - `env NAME`: report whether the variable is visible.
//! - `escape PATH`: try to read PATH, report the error.

use std::net::TcpStream;

use corral_guest::{Lock, Queue, arg, or_die};

fn main() {
    let mode: String = arg(1, String::new());
    let target: String = arg(2, String::new());
    match mode.as_str() {
        "stdout-flood" => {
            let bytes: usize = target.parse().unwrap_or(1 << 20);
            let line = "x".repeat(1023) + "\n";
            let mut written = 0;
            while written < bytes {
                print!("{line}");
                written += line.len();
            }
            eprintln!("done after {written} bytes");
        }
        "queue-flood" => {
            let queue = or_die("open", Queue::open(&target));
            let mut n = 0u64;
            while or_die("try-put", queue.try_put(&[0u8; 64])) {
                n += 1;
            }
            println!("the queue took {n} messages, then said full");
        }
        "lock-spin" => {
            let lock = or_die("open", Lock::open(&target));
            let _guard = or_die("acquire", lock.acquire(None));
            println!("holding {target}, spinning");
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "connect" => match TcpStream::connect(&target) {
            Ok(_) => println!("connected to {target}"),
            Err(e) => println!("connect {target}: {e} ({:?})", e.kind()),
        },
        "env" => match std::env::var(&target) {
            Ok(value) => println!("{target}={value}"),
            Err(_) => println!("{target} is not visible"),
        },
        "escape" => match std::fs::read(&target) {
            Ok(bytes) => println!("read {} bytes of {target}", bytes.len()),
            Err(e) => println!("{target}: {e}"),
        },
        other => {
            eprintln!("unknown mode {other:?}");
            corral_guest::exit(64);
        }
    }
}
