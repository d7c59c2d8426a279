//! The classic blocking TCP echo server: one client at a time, through
//! Rust's `std::net` (WASI sockets underneath). Serves CLIENTS clients, then
//! exits; 0 serves until killed. Args: ADDR [CLIENTS]
//!
//! A bind its policy does not grant fails with `PermissionDenied`: the
//! worker says so and exits 3.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

use corral_guest::{arg, exit};

fn main() {
    let addr: String = arg(1, "127.0.0.1:7007".to_string());
    let clients: u64 = arg(2, 0);
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bind {addr}: {e}");
            exit(if e.kind() == ErrorKind::PermissionDenied {
                3
            } else {
                1
            });
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("listening on {local}"),
        Err(e) => println!("listening on {addr} ({e})"),
    }
    let mut served = 0;
    while clients == 0 || served < clients {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        served += 1;
        match echo(stream) {
            Ok(bytes) => println!("client {served} ({peer}): {bytes} bytes echoed"),
            Err(e) => println!("client {served} ({peer}): {e}"),
        }
    }
}

/// Echoes until the client closes its side; returns the bytes echoed.
fn echo(mut stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}
