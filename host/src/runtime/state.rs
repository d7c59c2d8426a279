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
use crate::bindings::sockets::{HeldSockets, PolicedSockets, PolicedSocketsView};
use crate::bindings::{IpcCtx, IpcCtxView, IpcView};
use crate::budget::Budget;
use crate::ipc::Registry;
use crate::meter::WorkerMeter;
use crate::policy::Policy;
use crate::reporter::Reporter;
use crate::vfs::ByteBudget;

/// Enforces the worker's memory cap over all its linear memories and
/// tables together (charged to its family's [`Budget`], so a child's bytes
/// count against its ancestors' caps too), and over its linear memories and
/// private trees together; and its policy's counts of instances, tables and
/// memories.
pub(crate) struct MemoryLimiter {
    /// With a cap: the budget that linear memory shares with the worker's
    /// `@scratch` trees, of `cap` bytes.
    pub private: Option<Arc<ByteBudget>>,
    /// Bytes taken from `private` for the grow in progress, given back if
    /// the grow fails after all.
    pub pending: u64,
    pub counts: crate::policy::Counts,
    pub meter: Arc<WorkerMeter>,
    /// Where the worker's bytes are charged; given back when the store goes.
    pub budget: Arc<Budget>,
    /// Bytes charged to `budget` so far: linear memory and tables.
    pub charged: u64,
    /// Told of the first refused grow (later ones would only repeat it).
    pub reporter: Option<Reporter>,
}

/// What one table element costs the host: wasmtime keeps a pointer-sized
/// slot per element of a funcref table (externref slots are smaller).
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

impl MemoryLimiter {
    /// Charges `bytes` more to the budget; on refusal remembers `what` was
    /// asked (in case the worker dies of it) and reports the first one.
    fn grow(&mut self, bytes: u64, what: impl FnOnce() -> String) -> bool {
        match self.budget.charge_memory(bytes) {
            Ok(()) => {
                self.charged += bytes;
                true
            }
            Err(cap) => {
                // The guest sees an ordinary allocation failure (memory.grow
                // or table.grow returns -1); the host remembers why in case
                // the worker dies of it.
                let total = self.charged.saturating_add(bytes);
                self.meter.memory_refused(total);
                if let Some(reporter) = self.reporter.take() {
                    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
                    reporter.deny(
                        "memory",
                        format!("{} to {} (cap {})", what(), size(total), size(cap)),
                    );
                }
                false
            }
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.budget.release_memory(self.charged);
    }
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
        let grow = total.saturating_sub(held);
        let granted = self
            .private
            .as_ref()
            .is_none_or(|private| private.reserve(grow));
        if !granted {
            // The guest sees an ordinary allocation failure (memory.grow
            // returns -1); the host remembers why in case the worker dies of it.
            self.meter.memory_refused(total);
            if let (Some(reporter), Some(private)) = (self.reporter.take(), &self.private) {
                let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
                let files = private.used().saturating_sub(held);
                reporter.deny(
                    "memory",
                    format!(
                        "growing memory to {} with {} in private files (cap {})",
                        size(total),
                        size(files),
                        size(private.max())
                    ),
                );
            }
            return Ok(false);
        }
        if !self.grow(grow, || "growing memory".into()) {
            if let Some(private) = &self.private {
                private.release(grow);
            }
            return Ok(false);
        }
        self.pending = grow;
        self.meter.memory_grown(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if let Some(private) = &self.private {
            private.release(pending);
        }
        self.budget.release_memory(pending);
        self.charged -= pending;
        tracing::debug!("memory grow failed below the worker's cap: {error}");
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let elements = desired.saturating_sub(current) as u64;
        let bytes = elements.saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.grow(bytes, || format!("growing a table by {elements} elements")))
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
    /// What the worker's sockets are charged to its ledger.
    pub sockets: HeldSockets,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
}

impl WorkerState {
    /// The state of the worker `reporter` reports for, its contexts made
    /// from `policy`, its run's `objects` and its `family`; its mounts'
    /// handles were charged to `vfs.ledger`, which its sockets are charged
    /// to too.
    pub fn new(
        reporter: Reporter,
        policy: Arc<Policy>,
        objects: Arc<Registry>,
        family: Option<Family>,
        vfs: VfsCtx,
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
                releases: Default::default(),
                activity: Default::default(),
            },
            process: ProcessCtx {
                id: reporter.id,
                name: reporter.name.clone(),
                policy: policy.clone(),
                reporter: reporter.clone(),
                family,
                // Until the worker's own is attached: nothing asks a pool
                // instance (or a test's store) to stop.
                shutdown: tokio::sync::watch::channel(false).1,
            },
            policy,
            reporter,
            vfs,
            sockets: HeldSockets::default(),
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
            ledger: &self.vfs.ledger,
            held: &mut self.sockets,
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
            Reporter::new(0, Arc::from("test"), None),
            Arc::default(),
            Registry::new(),
            None,
            VfsCtx {
                mounts,
                ledger: Arc::default(),
                bytes: Arc::new(ByteBudget::new(crate::vfs::Limits::DEFAULT.max_bytes)),
            },
            WasiCtx::builder().build(),
            MemoryLimiter {
                private: None,
                pending: 0,
                counts: Default::default(),
                meter: Default::default(),
                budget: Budget::new(None, (None, None), Default::default(), None),
                charged: 0,
                reporter: None,
            },
        )
    }
}
