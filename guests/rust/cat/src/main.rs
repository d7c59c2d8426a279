//! A plain WASI program, as `cat` is: writes each FILE (or stdin, for `-`
//! or no FILE at all) to stdout byte for byte, or with `-o OUT` to file OUT.
//! Exits 1 naming what it could not read or write, as `cat` does.

use std::io::{Read, Write};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let out_path = match args.iter().position(|a| a == "-o") {
        Some(i) if i + 1 < args.len() => {
            let path = args.remove(i + 1);
            args.remove(i);
            Some(path)
        }
        _ => None,
    };
    if args.is_empty() {
        args.push("-".into());
    }
    let mut out: Box<dyn Write> = match &out_path {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(file),
            Err(e) => fail(path, e),
        },
        None => Box::new(std::io::stdout().lock()),
    };
    for arg in &args {
        let mut input: Box<dyn Read> = if arg == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(arg) {
                Ok(file) => Box::new(file),
                Err(e) => fail(arg, e),
            }
        };
        if let Err(e) = std::io::copy(&mut input, &mut out) {
            fail(arg, e);
        }
    }
    if let Err(e) = out.flush() {
        fail(out_path.as_deref().unwrap_or("stdout"), e);
    }
}

fn fail(what: &str, error: std::io::Error) -> ! {
    eprintln!("cat: {what}: {error}");
    std::process::exit(1);
}
