//! Allocates memory 1 MiB at a time up to the MiB count given as its first
//! argument, touching every page. The second argument says what to do when an
//! allocation is refused: `abort` (the default, Rust's usual out-of-memory
//! abort, which traps) or `try` (report it and exit 0).

fn main() {
    let mut args = std::env::args().skip(1);
    let target_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let graceful = args.next().as_deref() == Some("try");
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for mib in 1..=target_mib {
        let mut block = Vec::new();
        if graceful {
            if block.try_reserve_exact(1 << 20).is_err() {
                println!("allocation refused after {} MiB", mib - 1);
                return;
            }
        } else {
            block.reserve_exact(1 << 20);
        }
        block.resize(1 << 20, mib as u8);
        blocks.push(block);
    }
    println!("allocated {target_mib} MiB");
}
