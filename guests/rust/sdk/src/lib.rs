//! Rust bindings to Corral's host interfaces (`wit/`, world `imports`).
//!
//! Guests depend on this crate instead of running `wit-bindgen` themselves, so
//! every Rust guest in this repository is built against the same contract.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "corral:worker/imports",
    generate_all,
});

pub use corral::worker::*;

/// Ends the worker with `code` as its exit status.
///
/// Rust's `std::process::exit` on wasm32-wasip2 can only report success or
/// failure (0 or 1); this reports the code itself through WASI 0.2.12's
/// `exit-with-code`.
pub fn exit(code: u8) -> ! {
    wasi::cli::exit::exit_with_code(code);
    unreachable!("exit-with-code returned")
}
