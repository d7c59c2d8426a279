//! A hostile worker for issue 15's socket attacks, and its sibling. All
//! traffic stays on 127.0.0.1.
//!
//! - `sockets-forever tcp|udp [sleep|exit]`: binds TCP listeners (or UDP
//!   sockets) on 127.0.0.1 without closing any, until one fails; prints
//!   `opened N` and `error raw=ERRNO kind=KIND: MESSAGE`, closes one and
//!   tries again (`after closing one: ok|refused`), then sleeps holding
//!   them all (so the host's count can be read) or exits 0.
//! - `accept-forever`: one listener; connects to it and accepts, holding
//!   both ends, until a connect or an accept fails; prints `pairs N` and
//!   the error as above, naming the call that failed.
//! - `sibling DIR ROUNDS`: each round writes, reads back and removes a file
//!   in DIR, and echoes a byte over a fresh TCP connection to itself, one
//!   round every 20 ms; prints `ok ROUNDS`: the sibling that must go on
//!   while the attack runs.

use std::fs;
use std::io::{Error, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["sockets-forever", kind @ ("tcp" | "udp"), then @ ..] => {
            sockets_forever(kind == &"tcp", then.first() == Some(&"sleep"))
        }
        ["accept-forever"] => accept_forever(),
        ["sibling", dir, rounds] => sibling(dir, rounds.parse().expect("ROUNDS")),
        _ => {
            eprintln!(
                "usage: hostile-net sockets-forever tcp|udp [sleep|exit] | accept-forever \
                 | sibling DIR ROUNDS"
            );
            std::process::exit(2);
        }
    }
}

/// A socket of either kind, held until dropped.
fn open(tcp: bool) -> Result<Box<dyn Send>, Error> {
    if tcp {
        Ok(Box::new(TcpListener::bind("127.0.0.1:0")?))
    } else {
        Ok(Box::new(UdpSocket::bind("127.0.0.1:0")?))
    }
}

fn describe(error: &Error) -> String {
    format!(
        "raw={} kind={:?}: {error}",
        error.raw_os_error().unwrap_or(-1),
        error.kind()
    )
}

fn sockets_forever(tcp: bool, sleep: bool) {
    let mut held = Vec::new();
    let error = loop {
        match open(tcp) {
            Ok(socket) => held.push(socket),
            Err(error) => break error,
        }
    };
    println!("opened {}", held.len());
    println!("error {}", describe(&error));
    // Closing one must free a slot: the limit counts what is held.
    held.pop();
    let again = open(tcp);
    println!(
        "after closing one: {}",
        if again.is_ok() { "ok" } else { "refused" }
    );
    std::io::stdout().flush().unwrap();
    if sleep {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

fn accept_forever() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the listener");
    let addr = listener.local_addr().expect("the listener's address");
    let mut pairs = Vec::new();
    let (call, error) = loop {
        let client = match TcpStream::connect(addr) {
            Ok(client) => client,
            Err(error) => break ("connect", error),
        };
        match listener.accept() {
            Ok((server, _)) => pairs.push((client, server)),
            Err(error) => break ("accept", error),
        }
    };
    println!("pairs {}", pairs.len());
    println!("{call} error {}", describe(&error));
}

fn sibling(dir: &str, rounds: u32) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("sibling bind");
    let addr = listener.local_addr().expect("sibling address");
    for round in 0..rounds {
        let path = format!("{dir}/sibling");
        fs::write(&path, format!("round {round}")).expect("sibling write");
        assert_eq!(
            fs::read_to_string(&path).expect("sibling read"),
            format!("round {round}")
        );
        fs::remove_file(&path).expect("sibling remove");

        let mut client = TcpStream::connect(addr).expect("sibling connect");
        let (mut server, _) = listener.accept().expect("sibling accept");
        client.write_all(&[round as u8]).expect("sibling send");
        let mut byte = [0u8];
        server.read_exact(&mut byte).expect("sibling receive");
        assert_eq!(byte[0], round as u8);
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("ok {rounds}");
}
