//! Per-worker store state: the contexts of the interfaces a worker imports
//! composed into one store type, with the views the bindings work on; the
//! memory limiter; and the meters the host reads while and after the worker
//! runs.

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::filesystem::{VfsCtx, VfsCtxView, VfsView};
use crate::bindings::process::{Family, ProcessCtx, ProcessCtxView, ProcessView};
use crate::bindings::wasi::{PolicedSockets, PolicedSocketsView};
use crate::bindings::{IpcCtx, IpcCtxView, IpcView};
use crate::ipc::Registry;
use crate::ledger::Ledger;
use crate::meter::WorkerMeter;
use crate::policy::Policy;
use crate::reporter::Reporter;

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
        let held = self.meter.memory_held();
        let total = held.saturating_sub(current as u64) + desired as u64;
        if self.cap.is_some_and(|cap| total > cap) {
            // The guest sees an ordinary allocation failure (memory.grow
            // returns -1); the host remembers why in case the worker dies of it.
            self.meter.memory_refused(total);
            if let (Some(reporter), Some(cap)) = (self.reporter.take(), self.cap) {
                let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
                reporter.deny(
                    "memory",
                    format!("growing memory to {} (cap {})", size(total), size(cap)),
                );
            }
            return Ok(false);
        }
        self.meter.memory_grown(total);
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
    /// from `policy`, its run's `objects` and its `family`; its mounts'
    /// handles are charged to the `ledger` they were charged to.
    pub fn new(
        reporter: Reporter,
        policy: Arc<Policy>,
        objects: Arc<Registry>,
        family: Option<Family>,
        (mounts, ledger): (crate::vfs::MountTable, Arc<Ledger>),
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
            vfs: VfsCtx { mounts, ledger },
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
            (mounts, Arc::default()),
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
