//! {{name}}: a Corral worker. With a QUEUE argument it takes messages from
//! that queue until an empty stop message (or the queue is closed) and
//! counts them; without, it says hello.

wit_bindgen::generate!({
    path: "wit",
    world: "corral:worker/imports",
    generate_all,
});

use corral::worker::process;
use corral::worker::queue::Queue;
use corral::worker::types::Error;

fn main() {
    let me = process::name();
    let Some(queue_name) = std::env::args().nth(1) else {
        println!("hello from {me}");
        return;
    };
    let queue = Queue::open(&queue_name).unwrap_or_else(|e| {
        eprintln!("cannot open queue {queue_name}: {e:?}");
        std::process::exit(1)
    });
    let mut count = 0u64;
    loop {
        match queue.get(None) {
            Ok(message) if message.is_empty() => break,
            Ok(_) => count += 1,
            Err(Error::Closed) => break,
            Err(e) => {
                eprintln!("get: {e:?}");
                std::process::exit(1)
            }
        }
        let _ = queue.task_done();
    }
    println!("{me} took {count} messages");
}
