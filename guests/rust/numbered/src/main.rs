//! Prints COUNT numbered lines of WIDTH bytes (`00000042 xxx…`) to stdout,
//! then `done` to stderr: output a reader can check for completeness and
//! order. Args: COUNT WIDTH.

use std::io::Write;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("COUNT WIDTH"))
        .collect();
    let [count, width] = args[..] else {
        eprintln!("usage: numbered COUNT WIDTH");
        std::process::exit(2);
    };
    let padding = "x".repeat(width.saturating_sub(10));
    let mut out = std::io::stdout().lock();
    for line in 0..count {
        writeln!(out, "{line:08} {padding}").expect("write a line");
    }
    out.flush().expect("flush");
    eprintln!("done");
}
