//! Per-worker store state: the contexts of the interfaces a worker imports
//! composed into one store type, with the views the bindings work on; the
//! memory limiter; and the meters the host reads while and after the worker
//! runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::filesystem::{VfsCtx, VfsCtxView, VfsView};
use crate::bindings::process::{Family, ProcessCtx, ProcessCtxView, ProcessView};
use crate::bindings::wasi::{PolicedSockets, PolicedSocketsView};
use crate::bindings::{IpcCtx, IpcCtxView, IpcView};
use crate::ipc::Registry;
use crate::policy::Policy;
use crate::reporter::Reporter;

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
    /// the next one.
    pub fn poll_ended(&self) {
        let start = self.poll_start_ns.swap(0, Ordering::Relaxed);
        if start != 0 {
            let precise = self.precise.load(Ordering::Relaxed);
            let spent = now_ns(precise).saturating_sub(start);
            self.cpu_ns.fetch_add(spent, Ordering::Relaxed);
            self.precise
                .store(spent > PRECISE_AFTER_NS, Ordering::Relaxed);
        }
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

    /// CPU time booked by finished polls.
    pub fn booked_cpu_ns(&self) -> u64 {
        self.cpu_ns.load(Ordering::Relaxed)
    }

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

/// Enforces the worker's memory cap over all its linear memories together,
/// and its policy's counts of instances, tables and memories.
pub(crate) struct MemoryLimiter {
    pub cap: Option<u64>,
    pub counts: crate::policy::Counts,
    pub meter: Arc<WorkerMeter>,
    /// Told of the first refused grow (later ones would only repeat it).
    pub reporter: Option<Reporter>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let held = self.meter.memory.load(Ordering::Relaxed);
        let total = held.saturating_sub(current as u64) + desired as u64;
        if self.cap.is_some_and(|cap| total > cap) {
            // The guest sees an ordinary allocation failure (memory.grow
            // returns -1); the host remembers why in case the worker dies of it.
            self.meter.denied_memory.store(total, Ordering::Relaxed);
            if let (Some(reporter), Some(cap)) = (self.reporter.take(), self.cap) {
                let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
                reporter.deny(
                    "memory",
                    format!("growing memory to {} (cap {})", size(total), size(cap)),
                );
            }
            return Ok(false);
        }
        self.meter.memory.store(total, Ordering::Relaxed);
        self.meter.peak_memory.fetch_max(total, Ordering::Relaxed);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        tracing::debug!("memory grow failed below the worker's cap: {error}");
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.counts.instances.map_or(10_000, |n| n as usize)
    }

    fn tables(&self) -> usize {
        self.counts.tables.map_or(10_000, |n| n as usize)
    }

    fn memories(&self) -> usize {
        self.counts.memories.map_or(10_000, |n| n as usize)
    }
}

/// A linker for stores of `engine` with every interface a worker may
/// import (see `bindings::PROVIDED_INTERFACES`).
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<WorkerState>> {
    let mut linker = Linker::new(engine);
    crate::bindings::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The data of one worker's `Store`: the context of each interface, the
/// resource table they share, and the memory limiter. The bindings see it
/// only through the views below.
pub(crate) struct WorkerState {
    /// What the worker may reach beyond its limits and mounts.
    pub policy: Arc<Policy>,
    /// Where denials are reported.
    pub reporter: Reporter,
    /// Queues, pipes, locks and sync objects.
    pub ipc: IpcCtx,
    /// Who the worker is, and the children it spawns.
    pub process: ProcessCtx,
    /// The worker's mounts: its view of `wasi:filesystem`.
    pub vfs: VfsCtx,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
}

impl WorkerState {
    /// The state of the worker `reporter` reports for, its contexts made
    /// from `policy`, its run's `objects` and its `family`.
    pub fn new(
        reporter: Reporter,
        policy: Arc<Policy>,
        objects: Arc<Registry>,
        family: Option<Family>,
        mounts: crate::vfs::MountTable,
        wasi: WasiCtx,
        limiter: MemoryLimiter,
    ) -> WorkerState {
        WorkerState {
            ipc: IpcCtx {
                id: reporter.id,
                name: reporter.name.clone(),
                objects,
                policy: policy.clone(),
                reporter: reporter.clone(),
            },
            process: ProcessCtx {
                id: reporter.id,
                name: reporter.name.clone(),
                policy: policy.clone(),
                reporter: reporter.clone(),
                family,
            },
            policy,
            reporter,
            vfs: VfsCtx { mounts },
            wasi,
            table: ResourceTable::new(),
            limiter,
        }
    }
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VfsView for WorkerState {
    fn vfs(&mut self) -> VfsCtxView<'_> {
        VfsCtxView {
            ctx: &mut self.vfs,
            table: &mut self.table,
        }
    }
}

impl PolicedSocketsView for WorkerState {
    fn policed_sockets(&mut self) -> PolicedSockets<'_> {
        PolicedSockets {
            sockets: WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            network: &self.policy.network,
            reporter: &self.reporter,
        }
    }
}

impl IpcView for WorkerState {
    fn ipc(&mut self) -> IpcCtxView<'_> {
        IpcCtxView {
            ctx: &self.ipc,
            table: &mut self.table,
        }
    }
}

impl ProcessView for WorkerState {
    fn process(&mut self) -> ProcessCtxView<'_> {
        ProcessCtxView {
            ctx: &mut self.process,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
impl WorkerState {
    /// A state for calling host functions directly in unit tests: no
    /// limits, the default policy, the given mounts.
    pub(crate) fn for_tests(mounts: crate::vfs::MountTable) -> WorkerState {
        WorkerState::new(
            Reporter {
                id: 0,
                name: Arc::from("test"),
                sink: None,
            },
            Arc::default(),
            Registry::new(),
            None,
            mounts,
            WasiCtx::builder().build(),
            MemoryLimiter {
                cap: None,
                counts: Default::default(),
                meter: Default::default(),
                reporter: None,
            },
        )
    }
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
