//! The guest side of the filesystem differential test (tests/fs_diff.rs):
//! `fs-diff DIR OP...` runs each operation (see `ops.rs`, which the test
//! compiles too) on paths below DIR through wasi-libc, and prints one result
//! line per operation.

mod ops;

use std::ffi::CString;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, lines)) = args.split_first() else {
        eprintln!("usage: fs-diff DIR OP...");
        std::process::exit(2);
    };
    let dir = CString::new(dir.as_str()).expect("DIR has no NUL");
    // SAFETY: a NUL-terminated path; the descriptor is handed to `Ops`.
    let base = unsafe { libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if base < 0 {
        eprintln!("open {dir:?}: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    let mut ops = ops::Ops::new(base);
    for line in lines {
        println!("{}", ops.run(line));
    }
}
