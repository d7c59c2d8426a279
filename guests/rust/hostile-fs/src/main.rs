//! A hostile worker for the filesystem's byte limits: each mode tries to make
//! the host hold memory through the in-memory tree and prints what it got,
//! as `MODE: ok ...` or `MODE: error kind=KIND os=ERRNO` (the `io::Error`
//! the guest saw), so the tests can assert the clean error.
//!
//! - `set-len PATH BYTES`: create PATH and set its length to BYTES.
//! - `write-at PATH OFFSET`: create PATH and write one byte at OFFSET.
//! - `deep-dirs DEPTH`: build a chain of DEPTH directories under `/chain`
//!   (by renames, so no path is ever long).
//! - `many-names DIR N LEN`: create N empty files with LEN-byte names in DIR.
//! - `hold-listings DIR N`: open N listings of DIR, read one entry of each,
//!   and keep them all open while it prints `holding`, then sleeps a second;
//!   on an error, prints `listed N` (how many it held) first.
//! - `link-many PATH N`: give PATH up to N more names by hard links.
//! - `sibling PATH ROUNDS`: write, read back and check PATH ROUNDS times,
//!   pausing between rounds: the well-behaved neighbour of an attack.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use corral_guest::arg;

fn report(mode: &str, result: io::Result<String>) {
    match result {
        Ok(what) => println!("{mode}: ok {what}"),
        Err(e) => println!(
            "{mode}: error kind={:?} os={}",
            e.kind(),
            e.raw_os_error().unwrap_or(-1)
        ),
    }
}

fn create(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
}

fn deep_dirs(depth: u32) -> io::Result<String> {
    fs::create_dir("/chain")?;
    for level in 1..depth {
        fs::create_dir("/next")?;
        fs::rename("/chain", "/next/d")?;
        fs::rename("/next", "/chain")
            .map_err(|e| io::Error::new(e.kind(), format!("at level {level}: {e}")))?;
    }
    Ok(format!("depth {depth}"))
}

fn many_names(dir: &str, n: u32, len: usize) -> io::Result<String> {
    fs::create_dir_all(dir)?;
    for i in 0..n {
        let name = format!("{i:08}{}", "n".repeat(len.saturating_sub(8)));
        if let Err(e) = File::create(format!("{dir}/{name}")) {
            println!("created {i}");
            return Err(e);
        }
    }
    Ok(format!("created {n}"))
}

fn hold_listings(dir: &str, n: u32) -> io::Result<String> {
    let mut held = Vec::new();
    for _ in 0..n {
        let listing = fs::read_dir(dir).and_then(|mut listing| {
            listing.next().transpose()?;
            Ok(listing)
        });
        match listing {
            Ok(listing) => held.push(listing),
            Err(e) => {
                println!("listed {}", held.len());
                return Err(e);
            }
        }
    }
    println!("holding {}", held.len());
    std::thread::sleep(Duration::from_secs(1));
    Ok(format!("held {}", held.len()))
}

fn link_many(path: &str, n: u32) -> io::Result<String> {
    File::create(path)?;
    for i in 0..n {
        if let Err(e) = fs::hard_link(path, format!("{path}.{i}")) {
            println!("linked {i}");
            return Err(e);
        }
    }
    Ok(format!("linked {n}"))
}

fn sibling(path: &str, rounds: u32) -> io::Result<String> {
    for round in 0..rounds {
        let line = format!("round {round}\n");
        let mut file = create(path)?;
        file.write_all(line.as_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        let mut back = String::new();
        file.read_to_string(&mut back)?;
        if back != line {
            return Err(io::Error::other(format!("read back {back:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(format!("{rounds} rounds"))
}

fn main() {
    let mode: String = arg(1, String::new());
    let target: String = arg(2, String::new());
    let result = match mode.as_str() {
        "set-len" => create(&target)
            .and_then(|file| file.set_len(arg(3, 1 << 31)))
            .map(|()| "set".to_string()),
        "write-at" => create(&target).and_then(|mut file| {
            file.seek(SeekFrom::Start(arg(3, 1 << 31)))?;
            file.write_all(b"x")?;
            Ok("written".to_string())
        }),
        "deep-dirs" => deep_dirs(target.parse().unwrap_or(10_000)),
        "many-names" => many_names(&target, arg(3, 100_000), arg(4, 200)),
        "hold-listings" => hold_listings(&target, arg(3, 100)),
        "link-many" => link_many(&target, arg(3, 1_000_000)),
        "sibling" => sibling(&target, arg(3, 50)),
        _ => {
            eprintln!("unknown mode {mode:?}");
            corral_guest::exit(2)
        }
    };
    report(&mode, result);
}
