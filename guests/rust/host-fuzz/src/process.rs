//! The process half of the fuzzer: spawns with odd component names, child
//! names and arguments, and calls on the children it holds.

use corral_guest::process::Child;

use crate::Tally;
use crate::rng::Rng;

/// The component the test registers (this guest); its children get random
/// arguments, so they print one line and exit.
const COMPONENTS: &[&str] = &["host-fuzz"];

/// The children held at once: past it, one is dropped (which ends it).
const MAX_HELD: usize = 4;

/// The children the fuzzer holds.
#[derive(Default)]
pub struct Children {
    held: Vec<Child>,
}

impl Children {
    /// One random process call.
    pub fn step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.held.is_empty() || rng.one_in(3) {
            let component = rng.name(COMPONENTS);
            let name = rng.name(&["c", "child", "a-b_c.d"]);
            let args: Vec<String> = (0..rng.below(4))
                .map(|_| rng.name(&["x", "fuzz"]))
                .collect();
            let r = Child::spawn(&component, &name, &args);
            tally.ipc("spawn", &r);
            if let Ok(child) = r {
                if self.held.len() >= MAX_HELD {
                    self.held.swap_remove(0);
                }
                self.held.push(child);
            }
            return;
        }
        let i = rng.below(self.held.len() as u64) as usize;
        let child = &self.held[i];
        match rng.below(5) {
            0 => {
                let _ = (child.id(), child.is_alive());
                tally.count("ok");
            }
            1 | 2 => tally.ipc("join", &child.join(rng.short_timeout())),
            3 => {
                child.kill();
                tally.count("ok");
            }
            _ => {
                drop(self.held.swap_remove(i));
                tally.count("ok");
            }
        }
    }
}
