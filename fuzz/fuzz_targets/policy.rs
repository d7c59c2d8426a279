//! Any text as a policy file, and every profile it names resolved
//! (`extends` chains and cycles included): a value or an error that names
//! the file, never a panic.
#![no_main]

use std::path::Path;

use corral::PolicyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match PolicyFile::parse(Path::new("fuzz.toml"), text) {
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("fuzz.toml"), "no file name in: {message}");
        }
        Ok(file) => {
            for name in text.lines().filter_map(profile_name) {
                if let Err(e) = file.profile(Some(name)) {
                    let message = e.to_string();
                    assert!(message.contains("fuzz.toml"), "no file name in: {message}");
                }
            }
        }
    }
});

/// `x` of a `[profiles.x]` header line, the names worth resolving.
fn profile_name(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("[profiles.")?
        .strip_suffix(']')
        .filter(|name| !name.contains(['.', '"', '\'']))
}
