//! Any text as a network address rule (`host[/prefix][:port[-port]]`): a
//! rule or an error, never a panic.
#![no_main]

use corral::policy::AddrRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = text.parse::<AddrRule>();
});
