//! A WASI preview1 core module (wasm32-wasip1) that exits with the code
//! given as its first argument (0-255, default 0) through `proc_exit`, after
//! saying so on stdout and stderr.

fn main() {
    let code: i32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("exit-p1: not a number: {arg}");
            std::process::exit(64);
        }),
        None => 0,
    };
    println!("exiting with {code}");
    eprintln!("(stderr) exiting with {code}");
    std::process::exit(code);
}
