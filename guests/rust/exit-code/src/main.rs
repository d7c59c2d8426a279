//! Exits with the code (0-255) given as its first argument (default 0), after
//! saying so on stdout and stderr.

fn main() {
    let code: u8 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("exit-code: not a number: {arg}");
            std::process::exit(64);
        }),
        None => 0,
    };
    println!("exiting with {code}");
    eprintln!("(stderr) exiting with {code}");
    corral_guest::exit(code);
}
