//! Spins forever in pure Wasm, never calling the host: only epoch interruption
//! can stop it. With an argument N it stops after N iterations instead.

fn main() {
    let limit: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    println!("spinning");
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
        if limit.is_some_and(|l| x >= l) {
            break;
        }
    }
    println!("spun {x} times");
}
