//! A worker for graceful shutdown (issue 17). `graceful listen` prints
//! `ready`, waits on `shutdown-requested`, cleans up (prints two lines, a
//! tenth of a second apart) and exits 0. `graceful ignore` prints `ready`
//! and sleeps for an hour, deaf to the request: the host terminates it
//! when the grace period is over.

use std::io::Write;
use std::time::Duration;

use corral_guest::{arg, process};

fn main() {
    let mode: String = arg(1, "listen".to_string());
    println!("ready");
    let _ = std::io::stdout().flush();
    if mode == "listen" {
        process::shutdown_requested().block();
        println!("asked to stop: cleaning up");
        std::thread::sleep(Duration::from_millis(100));
        println!("clean exit");
    } else {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
