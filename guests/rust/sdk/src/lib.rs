//! Rust bindings to Corral's host interfaces (`wit/`, world `imports`), plus
//! a few helpers every guest in this repository uses.
//!
//! Guests depend on this crate instead of running `wit-bindgen` themselves, so
//! every Rust guest in this repository is built against the same contract.

#[cfg(not(feature = "task"))]
wit_bindgen::generate!({
    path: "../../../wit",
    world: "corral:worker/imports",
    generate_all,
});

#[cfg(feature = "task")]
wit_bindgen::generate!({
    path: "../../../wit",
    world: "corral:worker/pool-batch-task",
    generate_all,
    pub_export_macro: true,
    default_bindings_module: "corral_guest",
});

/// Exports `handler` (`fn(&[u8]) -> Result<Vec<u8>, String>`) as a pool
/// task, both one input per call (`task`) and a chunk per call
/// (`task-batch`). Build the crate as a `cdylib`.
#[cfg(feature = "task")]
#[macro_export]
macro_rules! task {
    ($handler:path) => {
        struct CorralTask;

        impl $crate::exports::corral::worker::task::Guest for CorralTask {
            fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
                $handler(&input)
            }
        }

        impl $crate::exports::corral::worker::task_batch::Guest for CorralTask {
            fn handle_batch(inputs: $crate::Batch) -> Vec<Result<Vec<u8>, String>> {
                $crate::split_batch(&inputs).map(|input| $handler(input)).collect()
            }
        }

        $crate::export!(CorralTask with_types_in $crate);
    };
}

/// The messages of a batch, in order.
pub fn split_batch(batch: &Batch) -> impl Iterator<Item = &[u8]> {
    let mut offset = 0;
    batch.lengths.iter().map(move |&n| {
        let message = &batch.data[offset..offset + n as usize];
        offset += n as usize;
        message
    })
}

pub use corral::worker::lock::{Guard, Lock};
pub use corral::worker::pipe::Endpoint;
pub use corral::worker::queue::Queue;
pub use corral::worker::sync::{Barrier, Condition, Event, Semaphore};
pub use corral::worker::types::{Batch, Error};
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

/// A timeout of `ms` milliseconds, as the host interfaces take it.
pub fn ms(ms: u64) -> Option<u64> {
    Some(ms * 1_000_000)
}

/// FNV-1a of a message. Summed (wrapping) over a set of messages it gives an
/// order-independent checksum that changes if any message is lost or
/// duplicated.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `n`th positional argument (after `argv[0]`), parsed, or `default`.
pub fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Opens a named object or ends the worker with a clear message (exit 2).
pub fn or_die<T>(what: &str, result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("{what}: {e:?}");
        exit(2)
    })
}
