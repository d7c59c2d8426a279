//! A guest-driven fuzzer of the host's functions (issue 16): from a seed, it
//! calls Corral's IPC interfaces, `wasi:filesystem` and `process` with random
//! handles, sizes, offsets, paths, names and timeouts, and counts what each
//! call returned. The host must answer every call with a result or a clean
//! trap; the tests (tests/host_fuzz.rs) check that it does, and that a
//! sibling worker is unaffected.
//!
//! - `fuzz SEED OPS [block]`: OPS random calls, then one summary line
//!   `summary seed=SEED ops=OPS ok=N err=M {outcome: count, ...}`. One seed
//!   in four then ends with `probe ...` and a call on a forged handle
//!   (stale, of another kind, or never issued), which the canonical ABI
//!   answers with a trap. With `block`, some waits have no timeout: the
//!   test kills the worker wherever it waits.
//! - `sibling QUEUE DIR ROUNDS`: the well-behaved neighbour: puts and gets
//!   messages on QUEUE and writes and reads back files under DIR, checking
//!   every one; prints `sibling ok ROUNDS`.
//!
//! Without `block`, every wait has a short timeout, or is made only when the
//! object is known to be ready (this worker is the only user of the objects
//! it fuzzes), so a run never blocks for long. Any other first argument (a child spawned with
//! random arguments) prints one line and exits 0.

mod fs;
mod ipc;
mod process;
mod rng;
mod sibling;

use std::collections::BTreeMap;

use corral_guest::arg;
use rng::Rng;

/// What the calls of a run returned, by outcome (`ok`, or the error's kind).
#[derive(Default)]
pub struct Tally {
    outcomes: BTreeMap<String, u32>,
}

impl Tally {
    /// Counts one call's outcome.
    pub fn count(&mut self, outcome: impl Into<String>) {
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }

    /// Counts a Corral call's result by its error variant.
    pub fn ipc<T>(&mut self, what: &str, result: &Result<T, corral_guest::Error>) {
        match result {
            Ok(_) => self.count("ok"),
            Err(e) => self.count(format!("{what}:{}", ipc::error_kind(e))),
        }
    }

    fn summary(&self, seed: u64, ops: u32) -> String {
        let ok = self.outcomes.get("ok").copied().unwrap_or(0);
        let total: u32 = self.outcomes.values().sum();
        let errors: Vec<String> = self
            .outcomes
            .iter()
            .filter(|(k, _)| k.as_str() != "ok")
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "summary seed={seed} ops={ops} ok={ok} err={} {{{}}}",
            total - ok,
            errors.join(", ")
        )
    }
}

fn main() {
    let mode: String = arg(1, String::new());
    match mode.as_str() {
        "fuzz" => fuzz(
            arg(2, 0),
            arg(3, 1000),
            arg::<String>(4, String::new()) == "block",
        ),
        "sibling" => sibling::run(
            &arg(2, String::from("sib-q")),
            &arg(3, String::from("/sib")),
            arg(4, 20),
        ),
        _ => println!("child mode {:?}", mode.escape_debug().to_string()),
    }
}

fn fuzz(seed: u64, ops: u32, blocking: bool) {
    let mut rng = Rng::new(seed, blocking);
    let mut tally = Tally::default();
    let mut ipc = ipc::Objects::default();
    let mut fs = fs::Files::open();
    let mut children = process::Children::default();
    for _ in 0..ops {
        match rng.below(10) {
            0..=3 => ipc.step(&mut rng, &mut tally),
            4..=8 => fs.step(&mut rng, &mut tally),
            _ => children.step(&mut rng, &mut tally),
        }
    }
    println!("{}", tally.summary(seed, ops));
    if rng.below(4) == 0 {
        probe(&mut rng, &mut ipc, &mut fs);
    }
}

/// Calls the host on a forged handle: the canonical ABI traps, or (a stale
/// index that was reused) the call reaches a live object.
fn probe(rng: &mut Rng, ipc: &mut ipc::Objects, fs: &mut fs::Files) {
    match rng.below(3) {
        0 => ipc.forged_call(rng),
        1 => fs.forged_call(rng),
        _ => ipc.stale_call(rng),
    }
    println!("probe returned");
}
