//! A worker's meters: the CPU time it used and the memory it held, readable
//! from outside its store while and after it runs. A leaf: plain atomics and
//! the OS clocks, nothing from wasmtime or the rest of the crate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the host knows about a live worker, readable from outside its store
/// (the store is owned by the worker's task and gone once it is cancelled).
///
/// CPU time is booked per poll of the worker's future. The thread's CPU clock
/// is a system call (about 0.5 µs here, more than a whole IPC round trip's
/// worth of guest work), so a worker whose polls are short is charged each
/// poll's wall time from the vDSO monotonic clock instead: over a poll of a
/// few microseconds the two differ only if the thread was preempted. Once a
/// poll runs longer than [`PRECISE_AFTER_NS`], the worker's next polls read
/// the CPU clock, which then costs under 2% of them.
#[derive(Debug, Default)]
pub(crate) struct WorkerMeter {
    /// CPU time spent in completed polls of the worker's future, in ns.
    cpu_ns: AtomicU64,
    /// Clock reading at the start of the current poll (0: not running).
    poll_start_ns: AtomicU64,
    /// The current poll started on the thread CPU clock, not the wall clock.
    precise: AtomicBool,
    /// Linear memory currently held, in bytes.
    memory: AtomicU64,
    /// The most linear memory held at once, in bytes.
    peak_memory: AtomicU64,
    /// The size a denied memory grow asked for, in bytes (0: none denied).
    denied_memory: AtomicU64,
}

/// A poll longer than this makes the worker's next polls read the thread CPU
/// clock (see [`WorkerMeter`]).
const PRECISE_AFTER_NS: u64 = 50_000;

impl WorkerMeter {
    /// Marks the start of a poll on the current thread.
    pub fn poll_started(&self) {
        let precise = self.precise.load(Ordering::Relaxed);
        self.poll_start_ns
            .store(now_ns(precise).max(1), Ordering::Relaxed);
    }

    /// Marks the end of a poll, books its CPU time and picks the clock for
    /// the next one. Returns the time booked, in ns.
    pub fn poll_ended(&self) -> u64 {
        let start = self.poll_start_ns.swap(0, Ordering::Relaxed);
        if start == 0 {
            return 0;
        }
        let precise = self.precise.load(Ordering::Relaxed);
        let spent = now_ns(precise).saturating_sub(start);
        self.cpu_ns.fetch_add(spent, Ordering::Relaxed);
        self.precise
            .store(spent > PRECISE_AFTER_NS, Ordering::Relaxed);
        spent
    }

    /// CPU time used so far, including the poll in progress. Must be called
    /// on the thread that is polling (the epoch callback is).
    pub fn cpu_ns(&self) -> u64 {
        let booked = self.cpu_ns.load(Ordering::Relaxed);
        match self.poll_start_ns.load(Ordering::Relaxed) {
            0 => booked,
            start => {
                let precise = self.precise.load(Ordering::Relaxed);
                booked + now_ns(precise).saturating_sub(start)
            }
        }
    }

    /// Whether the worker's future is being polled now: running wasm or the
    /// host code it calls, rather than waiting.
    pub fn is_polled(&self) -> bool {
        self.poll_start_ns.load(Ordering::Relaxed) != 0
    }

    /// CPU time booked by finished polls.
    pub fn booked_cpu_ns(&self) -> u64 {
        self.cpu_ns.load(Ordering::Relaxed)
    }

    /// Linear memory currently held, in bytes.
    pub fn memory_held(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// Records that the worker's linear memories now hold `total` bytes.
    pub fn memory_grown(&self, total: u64) {
        self.memory.store(total, Ordering::Relaxed);
        self.peak_memory.fetch_max(total, Ordering::Relaxed);
    }

    /// Records that a grow to `total` bytes was refused by the cap.
    pub fn memory_refused(&self, total: u64) {
        self.denied_memory.store(total, Ordering::Relaxed);
    }

    /// The most linear memory held at once, in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// The size of the memory grow that the cap refused, if any.
    pub fn denied_memory(&self) -> Option<u64> {
        match self.denied_memory.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// The calling thread's CPU time (`precise`) or the monotonic wall clock, in
/// nanoseconds.
fn now_ns(precise: bool) -> u64 {
    let clock = if precise {
        libc::CLOCK_THREAD_CPUTIME_ID
    } else {
        libc::CLOCK_MONOTONIC
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks are supported
    // on every Linux this host runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_long_poll_moves_the_next_ones_to_the_cpu_clock() {
        let meter = WorkerMeter::default();
        // A short poll on the wall clock: booked, and the clock stays cheap.
        meter.poll_started();
        meter.poll_ended();
        assert!(!meter.precise.load(Ordering::Relaxed));
        let short = meter.booked_cpu_ns();
        assert!(short < PRECISE_AFTER_NS, "{short} ns");

        // A poll that blocks 20 ms is charged its wall time, once...
        meter.poll_started();
        std::thread::sleep(Duration::from_millis(20));
        meter.poll_ended();
        assert!(meter.precise.load(Ordering::Relaxed));
        let after_wall = meter.booked_cpu_ns();
        assert!(after_wall - short >= 20_000_000, "{after_wall} ns");

        // ...and the next one, on the CPU clock, is not charged for sleeping.
        meter.poll_started();
        std::thread::sleep(Duration::from_millis(20));
        assert!(meter.cpu_ns() - after_wall < 5_000_000);
        meter.poll_ended();
        let after_precise = meter.booked_cpu_ns();
        assert!(after_precise - after_wall < 5_000_000, "{after_precise} ns");
    }
}
