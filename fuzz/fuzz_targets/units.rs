//! Any text as a size or a duration: a value below the documented
//! maximum or an error, never a panic or an overflow.
#![no_main]

use corral::units::{MAX_DURATION, MAX_SIZE, parse_duration, parse_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(size) = parse_size(text) {
        assert!(size < MAX_SIZE, "{text:?} parsed to {size}");
    }
    if let Ok(duration) = parse_duration(text) {
        assert!(duration <= MAX_DURATION, "{text:?} parsed to {duration:?}");
    }
});
