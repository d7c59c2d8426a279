//! A pipeline stage: takes `<producer>:<n>` messages from one queue and puts
//! `<n>` on another, in order, until an empty stop message or the queue is
//! closed; then puts STOPS stop messages downstream. The Rust stage of the
//! cross-language pipeline (examples/languages.toml).
//!
//! Args: INPUT OUTPUT [STOPS]

use corral_guest::{Error, Queue, arg, or_die};

fn main() {
    let input: String = arg(1, "raw".to_string());
    let output: String = arg(2, "numbers".to_string());
    let stops: u32 = arg(3, 1);
    let input = or_die("open input", Queue::open(&input));
    let output = or_die("open output", Queue::open(&output));
    let mut count = 0u64;
    loop {
        let message = match input.get(None) {
            Ok(m) => m,
            Err(Error::Closed) => break,
            Err(e) => or_die("get", Err(e)),
        };
        or_die("task-done", input.task_done());
        if message.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&message);
        let number = text.rsplit_once(':').map_or(&*text, |(_, n)| n);
        or_die("put", output.put(number.as_bytes(), None));
        count += 1;
    }
    for _ in 0..stops {
        or_die("put stop", output.put(&[], None));
    }
    println!("transformed {count} messages");
}
