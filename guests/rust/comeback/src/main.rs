//! A worker for restart policies (issue 17): it fails its first N starts,
//! then succeeds, reading its start's number in `CORRAL_RESTARTS`.
//!
//! `comeback N exit|trap [LOCK]`: with LOCK, it first takes that lock and
//! prints `start K: previous owner died: BOOL` (a failed start dies holding
//! it). While K < N it then exits 1 (`exit`) or traps (`trap`); start N
//! prints `ok after N restarts` and exits 0.

use corral_guest::{Lock, arg, or_die};

fn main() {
    let failures: u32 = arg(1, 0);
    let how: String = arg(2, "exit".into());
    let lock: String = arg(3, String::new());
    let start: u32 = std::env::var("CORRAL_RESTARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("comeback: CORRAL_RESTARTS is not set (no restart policy?)");
            std::process::exit(2);
        });
    let _guard = (!lock.is_empty()).then(|| {
        let lock = or_die("open lock", Lock::open(&lock));
        let guard = or_die("acquire", lock.acquire(Some(10_000_000_000)));
        println!(
            "start {start}: previous owner died: {}",
            guard.previous_owner_died()
        );
        guard
    });
    if start < failures {
        println!("start {start}: failing ({how})");
        match how.as_str() {
            "trap" => std::process::abort(),
            _ => std::process::exit(1),
        }
    }
    println!("ok after {start} restarts");
}
