//! The guest side of `make bench` for single file operations through plain
//! `std::fs` (`host/benches/compare/fs.rs`), timed in the guest.
//!
//! Args: OP DIR N. OP is one of:
//! - `rw`: writes 4 KiB at offset 0 of DIR/bench.dat and reads them back
//!   (each round writes another byte value; the first and last byte read
//!   are checked, as comparing all 4,096 in wasm would cost more than the
//!   I/O being measured);
//! - `stat`: `metadata` of DIR/bench.dat;
//! - `open`: opens DIR/bench.dat for reading and closes it.
//!
//! One untimed round of each first; then prints `OP NANOS` per operation.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

use corral_guest::{arg, exit};

fn main() {
    let op: String = arg(1, String::new());
    let dir: String = arg(2, "/".into());
    let n: u32 = arg(3, 10_000);
    let path = format!("{}/bench.dat", dir.trim_end_matches('/'));
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| die(&format!("cannot open {path}: {e}")));
    let mut block = [0u8; 4096];
    let mut back = [0u8; 4096];
    let mut round = |i: u32| -> std::io::Result<()> {
        match op.as_str() {
            "rw" => {
                block.fill(i as u8);
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&block)?;
                file.seek(SeekFrom::Start(0))?;
                file.read_exact(&mut back)?;
                if back[0] != i as u8 || back[4095] != i as u8 {
                    die("read back other bytes than were written");
                }
            }
            "stat" => {
                let meta = std::fs::metadata(&path)?;
                if !meta.is_file() {
                    die("not a file");
                }
            }
            "open" => drop(File::open(&path)?),
            other => die(&format!("unknown op `{other}` (rw, stat, open)")),
        }
        Ok(())
    };
    if let Err(e) = round(0) {
        die(&format!("{op} on {path}: {e}"));
    }
    let start = Instant::now();
    for i in 1..=n {
        if let Err(e) = round(i) {
            die(&format!("{op} on {path}: {e}"));
        }
    }
    println!("{op} {}", start.elapsed().as_nanos() / n.max(1) as u128);
}

fn die(message: &str) -> ! {
    eprintln!("{message}");
    exit(1)
}
