//! Any text as a `--mount` spec: a spec or an error, never a panic.
#![no_main]

use corral::vfs::MountSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = text.parse::<MountSpec>();
});
