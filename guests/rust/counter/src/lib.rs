//! Returns how many tasks this instance has handled, itself included: shows
//! when a pool reuses an instance and when it starts a fresh one.

use std::sync::atomic::{AtomicU64, Ordering};

static HANDLED: AtomicU64 = AtomicU64::new(0);

fn count(_input: &[u8]) -> Result<Vec<u8>, String> {
    Ok((HANDLED.fetch_add(1, Ordering::Relaxed) + 1)
        .to_string()
        .into_bytes())
}

corral_guest::task!(count);
