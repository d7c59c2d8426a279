//! Appends N lines to a shared file, the classic way: open for writing, seek
//! to the end, write the line (in two writes, as buffered I/O may). Under the
//! lock that is safe; without it (`LOCK` = `-`), workers overwrite each
//! other's lines: that is the damage the demo shows.
//!
//! Args: PATH LOCK N. Each line is `<name>:<seq>:<check>` where check is a
//! hash of the rest, so a checker can tell intact lines from torn ones.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use corral_guest::{Lock, arg, fnv1a, or_die, process};

fn main() {
    let path: String = arg(1, "/log.txt".to_string());
    let lock_name: String = arg(2, "file".to_string());
    let n: u32 = arg(3, 100);
    let me = process::name();
    let lock = (lock_name != "-").then(|| or_die("open lock", Lock::open(&lock_name)));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|e| {
            eprintln!("cannot open {path}: {e}");
            corral_guest::exit(2)
        });
    for i in 0..n {
        let body = format!("{me}:{i:06}");
        let line = format!("{body}:{:016x}\n", fnv1a(body.as_bytes()));
        let (head, tail) = line.as_bytes().split_at(line.len() / 2);
        let _guard = lock.as_ref().map(|l| or_die("acquire", l.acquire(None)));
        let append = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.seek(SeekFrom::End(0))?;
            file.write_all(head)?;
            file.write_all(tail)
        };
        if let Err(e) = append(&mut file) {
            eprintln!("append to {path} failed: {e}");
            corral_guest::exit(1);
        }
    }
    println!("appended {n} lines to {path}");
}
