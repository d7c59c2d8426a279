//! Prints its name, its id and its arguments: the smallest useful worker.

use corral_guest::process;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "hello from {} (worker {}), args: {:?}",
        process::name(),
        process::id(),
        args
    );
}
