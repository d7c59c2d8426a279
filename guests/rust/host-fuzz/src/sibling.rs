//! The well-behaved neighbour of a fuzz run: ordinary queue puts and gets
//! and file writes, every result checked.

use std::fs;

use corral_guest::{Queue, exit, ms, or_die};

/// Puts and gets `rounds` messages on `queue` and writes, reads back and
/// removes a file under `dir` each round; exits 1 at the first surprise.
pub fn run(queue: &str, dir: &str, rounds: u32) {
    let q = or_die("open", Queue::open(queue));
    let fail = |what: String| -> ! {
        println!("sibling FAIL {what}");
        exit(1)
    };
    if let Err(e) = fs::create_dir_all(dir) {
        fail(format!("mkdir {dir}: {e}"));
    }
    for round in 0..rounds {
        let message = format!("round {round}").into_bytes();
        if let Err(e) = q.put(&message, ms(10_000)) {
            fail(format!("put {round}: {e:?}"));
        }
        match q.get(ms(10_000)) {
            Ok(got) if got == message => {}
            other => fail(format!("get {round}: {other:?}")),
        }
        if let Err(e) = q.task_done() {
            fail(format!("task-done {round}: {e:?}"));
        }
        let path = format!("{dir}/f{}", round % 4);
        let text = format!("{round}\n").repeat(1000);
        if let Err(e) = fs::write(&path, &text) {
            fail(format!("write {path}: {e}"));
        }
        match fs::read_to_string(&path) {
            Ok(back) if back == text => {}
            other => fail(format!("read {path}: {:?}", other.map(|t| t.len()))),
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if let Err(e) = q.join(ms(10_000)) {
        fail(format!("join: {e:?}"));
    }
    println!("sibling ok {rounds}");
}
