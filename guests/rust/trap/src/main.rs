//! Traps on purpose: `unreachable` (the default), `panic`, `div0` or
//! `overflow` (unbounded recursion), chosen by the first argument.

fn main() {
    let how = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unreachable".into());
    println!("about to trap: {how}");
    match how.as_str() {
        "unreachable" => hit_unreachable(),
        "panic" => panic!("the trap guest panicked on purpose"),
        "div0" => {
            let zero = std::hint::black_box(0u32);
            println!("{}", 1 / zero);
        }
        "overflow" => println!("{}", recurse(std::hint::black_box(1))),
        other => {
            eprintln!("trap: unknown mode {other}");
            std::process::exit(64);
        }
    }
}

#[inline(never)]
fn hit_unreachable() {
    core::arch::wasm32::unreachable()
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let mut buf = [n; 64];
    std::hint::black_box(&mut buf);
    if buf[5] == 0 {
        return 0;
    }
    recurse(buf[3] + 1) + buf[7]
}
