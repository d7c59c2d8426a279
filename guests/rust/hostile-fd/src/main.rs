//! A hostile worker for issue 15's descriptor attacks, and its sibling.
//!
//! - `open-forever DIR [sleep|exit]`: creates and opens files in DIR without
//!   closing any, until an open fails; prints `opened N` and
//!   `error raw=ERRNO kind=KIND: MESSAGE`, then sleeps (holding them all, so
//!   the host's count can be read) or exits 0.
//! - `open-close DIR ROUNDS`: opens, writes, reads back and closes one file
//!   ROUNDS times, one round every 20 ms, and prints `ok ROUNDS`: the
//!   sibling that must go on while the attack runs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["open-forever", dir, then @ ..] => open_forever(dir, then.first() == Some(&"sleep")),
        ["open-close", dir, rounds] => open_close(dir, rounds.parse().expect("ROUNDS")),
        _ => {
            eprintln!("usage: hostile-fd open-forever DIR [sleep|exit] | open-close DIR ROUNDS");
            std::process::exit(2);
        }
    }
}

fn open_forever(dir: &str, sleep: bool) {
    let mut held: Vec<File> = Vec::new();
    let error = loop {
        let path = format!("{dir}/f{}", held.len());
        match OpenOptions::new().create(true).write(true).open(&path) {
            Ok(file) => held.push(file),
            Err(error) => break error,
        }
    };
    println!("opened {}", held.len());
    println!(
        "error raw={} kind={:?}: {error}",
        error.raw_os_error().unwrap_or(-1),
        error.kind()
    );
    // Closing one must free a slot: the limit counts what is held.
    held.pop();
    let again = OpenOptions::new()
        .create(true)
        .write(true)
        .open(format!("{dir}/again"));
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

fn open_close(dir: &str, rounds: u32) {
    for round in 0..rounds {
        let path = format!("{dir}/sibling");
        let mut file = File::create(&path).expect("sibling create");
        write!(file, "round {round}").expect("sibling write");
        drop(file);
        let mut text = String::new();
        File::open(&path)
            .expect("sibling open")
            .read_to_string(&mut text)
            .expect("sibling read");
        assert_eq!(text, format!("round {round}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("ok {rounds}");
}
