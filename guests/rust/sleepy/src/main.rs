//! Sleeps for the number of milliseconds given as its first argument (default:
//! forever, in one-hour naps), waiting inside a host call the whole time.

use std::time::Duration;

fn main() {
    let ms: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    println!("sleeping");
    match ms {
        Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    println!("woke up");
}
