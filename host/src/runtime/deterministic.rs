//! Deterministic runs: clocks that start at a fixed time and advance by a
//! fixed step per reading, and randomness from a seed, so the same inputs
//! replay the same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::policy::Deterministic;

/// Puts the deterministic clocks and random sources into a WASI context.
pub(super) fn install(wasi: &mut WasiCtxBuilder, det: Deterministic) {
    let start = det.start.duration_since(UNIX_EPOCH).unwrap_or_default();
    wasi.wall_clock(SteppingWall {
        start,
        readings: AtomicU64::new(0),
    })
    .monotonic_clock(SteppingMonotonic {
        readings: AtomicU64::new(0),
    })
    .secure_random(StdRng::seed_from_u64(det.seed))
    .insecure_random(StdRng::seed_from_u64(det.seed.wrapping_add(1)))
    .insecure_random_seed(u128::from(det.seed));
}

fn step_nanos(readings: &AtomicU64) -> u64 {
    let n = readings.fetch_add(1, Ordering::Relaxed);
    n.saturating_mul(Deterministic::STEP.as_nanos() as u64)
}

/// A wall clock at `start`, one step later at each reading.
struct SteppingWall {
    start: Duration,
    readings: AtomicU64,
}

impl HostWallClock for SteppingWall {
    fn resolution(&self) -> Duration {
        Deterministic::STEP
    }

    fn now(&self) -> Duration {
        self.start + Duration::from_nanos(step_nanos(&self.readings))
    }
}

/// A monotonic clock at 0, one step later at each reading.
struct SteppingMonotonic {
    readings: AtomicU64,
}

impl HostMonotonicClock for SteppingMonotonic {
    fn resolution(&self) -> u64 {
        Deterministic::STEP.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        step_nanos(&self.readings)
    }
}
