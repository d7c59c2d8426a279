//! Any text as a manifest: a value or an error that names the file, never
//! a panic, an abort or a hang.
#![no_main]

use std::path::Path;

use corral::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = Manifest::parse(Path::new("fuzz.toml"), text) {
        let message = e.to_string();
        assert!(message.contains("fuzz.toml"), "no file name in: {message}");
    }
});
