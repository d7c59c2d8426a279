//! Holds a semaphore permit for a while, logging `+` on entry and `-` on exit
//! to the `log` queue, so a checker can see how many held it at once.
//! Args: SEMAPHORE HOLD_MS

use std::time::Duration;

use corral_guest::{Queue, Semaphore, arg, or_die};

fn main() {
    let name: String = arg(1, "slots".to_string());
    let hold: u64 = arg(2, 20);
    let sem = or_die("open semaphore", Semaphore::open(&name));
    let log = or_die("open log", Queue::open("log"));
    or_die("acquire", sem.acquire(None));
    or_die("log", log.put(b"+", None));
    std::thread::sleep(Duration::from_millis(hold));
    or_die("log", log.put(b"-", None));
    or_die("release", sem.release());
}
