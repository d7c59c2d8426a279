//! Logs `before`, waits at a barrier, logs `after` (to the `log` queue) and
//! prints its arrival index. Args: BARRIER WORK_MS

use std::time::Duration;

use corral_guest::{Barrier, Queue, arg, ms, or_die, process};

fn main() {
    let name: String = arg(1, "start".to_string());
    let work: u64 = arg(2, 10);
    let barrier = or_die("open barrier", Barrier::open(&name));
    let log = or_die("open log", Queue::open("log"));
    std::thread::sleep(Duration::from_millis(work));
    or_die(
        "log",
        log.put(format!("before {}", process::name()).as_bytes(), None),
    );
    let index = or_die("barrier wait", barrier.wait(ms(30_000)));
    or_die(
        "log",
        log.put(format!("after {}", process::name()).as_bytes(), None),
    );
    println!(
        "passed the barrier as arrival {index} of {}",
        barrier.parties()
    );
}
