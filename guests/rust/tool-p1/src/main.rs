//! A WASI preview1 core module (wasm32-wasip1) that does what command-line
//! tools do, for the differential test against wasmtime's own preview1
//! (tests/preview1_diff.rs): whatever it prints must be the same under both.
//!
//! `args`: every argument, `argv[0]` too, one per line in Rust's debug form.
//! `env`: every variable, sorted, in debug form. `cat`: stdin to stdout.
//! `stderr TEXT`: TEXT to stderr. `read PATH`: the file's bytes to stdout.
//! `ls DIR`: the sorted names in DIR. `exit CODE`: says so on stdout and
//! stderr, then exits with CODE through `proc_exit`.

use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    let mut out = std::io::stdout().lock();
    let code = match (args.get(1).map(String::as_str), rest.as_slice()) {
        (Some("args"), _) => {
            for arg in &args {
                writeln!(out, "{arg:?}").unwrap();
            }
            0
        }
        (Some("env"), _) => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            for (k, v) in vars {
                writeln!(out, "{k:?}={v:?}").unwrap();
            }
            0
        }
        (Some("cat"), _) => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).unwrap();
            out.write_all(&input).unwrap();
            0
        }
        (Some("stderr"), [text]) => {
            eprint!("{text}");
            0
        }
        (Some("read"), [path]) => match std::fs::read(path) {
            Ok(bytes) => {
                out.write_all(&bytes).unwrap();
                0
            }
            Err(e) => {
                eprintln!("read {path}: {e}");
                1
            }
        },
        (Some("ls"), [dir]) => match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    writeln!(out, "{name}").unwrap();
                }
                0
            }
            Err(e) => {
                eprintln!("ls {dir}: {e}");
                1
            }
        },
        (Some("exit"), [code]) => {
            let code: i32 = code.parse().expect("CODE");
            writeln!(out, "exiting with {code}").unwrap();
            eprintln!("exiting with {code}");
            code
        }
        _ => {
            eprintln!("usage: tool-p1 args|env|cat|stderr TEXT|read PATH|ls DIR|exit CODE");
            2
        }
    };
    out.flush().unwrap();
    drop(out);
    std::process::exit(code);
}
