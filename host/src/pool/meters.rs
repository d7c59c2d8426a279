//! What a pool's instances used, for snapshots: the CPU time of those that
//! ended and the meters of those alive. Instances come and go (replaced
//! after a trap, after K tasks, or one per task), so a meter is dropped from
//! the list once its instance is gone, its CPU time kept in a sum.

use std::sync::Arc;
use std::sync::Mutex;

use crate::meter::WorkerMeter;

/// The meters of a pool's instances.
#[derive(Default)]
pub(super) struct InstanceMeters {
    inner: Mutex<Meters>,
}

#[derive(Default)]
struct Meters {
    /// CPU time of the instances that ended, in ns.
    ended_cpu_ns: u64,
    /// The meters of live instances (and of those ended since the last read).
    live: Vec<Arc<WorkerMeter>>,
}

impl InstanceMeters {
    /// Adds the meter of an instance just started.
    pub(super) fn watch(&self, meter: Arc<WorkerMeter>) {
        let mut meters = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        meters.prune();
        meters.live.push(meter);
    }

    /// CPU time of every instance so far, in ns, linear memory held by
    /// the live ones, in bytes, and how many live. Never blocks for long:
    /// one short lock.
    pub(super) fn read(&self) -> (u64, u64, u64) {
        let mut meters = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        meters.prune();
        let live_cpu: u64 = meters.live.iter().map(|m| m.booked_cpu_ns()).sum();
        let memory = meters.live.iter().map(|m| m.memory_held()).sum();
        let alive = meters.live.len() as u64;
        (meters.ended_cpu_ns + live_cpu, memory, alive)
    }
}

impl Meters {
    /// Moves the CPU time of instances gone (only this list holds their
    /// meter) into the sum, so the list stays as long as the pool is wide.
    fn prune(&mut self) {
        let mut ended = 0;
        self.live.retain(|m| {
            let alive = Arc::strong_count(m) > 1;
            if !alive {
                ended += m.booked_cpu_ns();
            }
            alive
        });
        self.ended_cpu_ns += ended;
    }
}
