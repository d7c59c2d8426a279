//! Per-worker store state: the WASI context, the resource table, and the
//! memory limiter that feeds the worker's meter.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::filesystem::{VfsCtx, VfsCtxView, VfsView};
use crate::meter::WorkerMeter;

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

/// Reports what a worker's policy refused, as events.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub id: u64,
    pub name: Arc<str>,
    pub sink: Option<Arc<dyn crate::events::EventSink>>,
}

impl Reporter {
    /// Records that the worker listens on `addr`.
    pub fn listening(&self, addr: std::net::SocketAddr) {
        if let Some(sink) = &self.sink {
            sink.event(&crate::events::Event::Listening {
                id: self.id,
                name: self.name.to_string(),
                addr: addr.to_string(),
            });
        }
    }

    /// Records that `rule` refused `action`.
    pub fn deny(&self, rule: &str, action: impl Into<String>) {
        if let Some(sink) = &self.sink {
            sink.event(&crate::events::Event::Denied {
                id: self.id,
                name: self.name.to_string(),
                rule: rule.to_string(),
                action: action.into(),
            });
        }
    }
}

/// The family tree a worker belongs to: what its spawn limits count.
#[derive(Clone, Default)]
pub(crate) struct Lineage {
    /// Workers spawned anywhere below the tree's root worker.
    pub descendants: Arc<std::sync::atomic::AtomicU32>,
}

/// What a worker that may spawn needs: the runtime to spawn on, its own
/// spec (children inherit it), its lineage, and its children so far.
pub(crate) struct Family {
    pub runtime: super::Runtime,
    pub spec: Arc<crate::worker::WorkerSpec>,
    pub lineage: Lineage,
    pub children: Vec<crate::worker::Worker>,
}

/// The data of one worker's `Store`.
pub(crate) struct WorkerState {
    pub id: u64,
    pub name: Arc<str>,
    /// What the worker may reach beyond its limits and mounts.
    pub policy: Arc<crate::policy::Policy>,
    /// Where denials are reported.
    pub reporter: Reporter,
    /// Set when the policy lets the worker spawn children.
    pub family: Option<Family>,
    pub run: crate::run::Run,
    /// The worker's mounts: its view of `wasi:filesystem`.
    pub vfs: VfsCtx,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
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

#[cfg(test)]
impl WorkerState {
    /// A state for calling host functions directly in unit tests: no
    /// limits, the default policy, the given mounts.
    pub(crate) fn for_tests(mounts: crate::vfs::MountTable) -> WorkerState {
        let name: Arc<str> = Arc::from("test");
        WorkerState {
            id: 0,
            name: name.clone(),
            run: crate::run::Run::new(),
            vfs: VfsCtx { mounts },
            policy: Arc::default(),
            reporter: Reporter {
                id: 0,
                name,
                sink: None,
            },
            family: None,
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: None,
                counts: Default::default(),
                meter: Default::default(),
                reporter: None,
            },
        }
    }
}
