//! A TCP client worker: connects to an echo server, sends COUNT messages of
//! SIZE bytes one at a time and checks that each comes back intact, then
//! puts `stop` on STOP_QUEUE if one is named. Args: ADDR COUNT SIZE
//! [STOP_QUEUE]
//!
//! A refused connection is retried for up to 5 seconds (the server may not
//! be listening yet). A connect its policy does not grant fails with
//! `PermissionDenied`: the worker says so and exits 3. A wrong echo exits 1.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use corral_guest::{Queue, arg, exit, or_die};

/// How long a refused connection is retried.
const RETRY_FOR: Duration = Duration::from_secs(5);

fn main() {
    let addr: String = arg(1, "127.0.0.1:7007".to_string());
    let count: u64 = arg(2, 1000);
    let size: usize = arg(3, 64).max(8);
    let stop: Option<String> = std::env::args().nth(4);
    let mut stream = connect(&addr);
    let start = Instant::now();
    let mut message = vec![0u8; size];
    let mut echo = vec![0u8; size];
    for seq in 0..count {
        // Each message differs from the last, so a stale echo is caught.
        message[..8].copy_from_slice(&seq.to_le_bytes());
        message[8..].fill(seq as u8);
        if let Err(e) = stream
            .write_all(&message)
            .and_then(|()| stream.read_exact(&mut echo))
        {
            eprintln!("message {seq}: {e}");
            exit(1);
        }
        if echo != message {
            eprintln!("message {seq}: the echo differs from what was sent");
            exit(1);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(stream);
    println!(
        "{count} messages of {size} bytes echoed intact ({:.0} round trips/s)",
        count as f64 / elapsed.max(1e-9)
    );
    if let Some(name) = stop {
        let queue = or_die("open the stop queue", Queue::open(&name));
        or_die("put stop", queue.put(b"stop", None));
    }
}

/// Connects, retrying while the server is not listening yet.
fn connect(addr: &str) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => return stream,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && start.elapsed() < RETRY_FOR => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                eprintln!("connect {addr}: {e}");
                exit(if e.kind() == ErrorKind::PermissionDenied {
                    3
                } else {
                    1
                });
            }
        }
    }
}
