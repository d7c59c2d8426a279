//! Isolation policies: what a worker may reach, deny by default.
//!
//! A [`Policy`] is what the host enforces at run time beyond a worker's
//! limits, environment and mounts (which live in
//! [`WorkerSpec`](crate::WorkerSpec)): network, IPC grants, spawning, output
//! caps, instance counts, fuel, and deterministic clocks and randomness.
//! Policy files ([`PolicyFile`]) hold named profiles that resolve to both.
//! A worker's resource [`Limits`] are defined here too, since profiles and
//! manifests set them.
//!
//! Policy depends only on leaves (units, the VFS's mount specs, config, the
//! ledger's defaults): never
//! on the worker, the runtime or the bindings, which all consult it.

mod file;
mod grants;
pub(crate) mod ipc_check;
mod network;

use std::time::{Duration, SystemTime};

use crate::ledger;

pub use file::{PolicyError, PolicyFile, Profile};
pub use grants::{IpcGrants, ObjectKind, Op, OpSet};
pub(crate) use network::network_allows;
pub use network::{AddrRule, NetworkPolicy, SocketUse};

/// The run-time part of a worker's policy. [`Policy::default`] is what a
/// worker without a policy file gets: no network, no spawning, no caps on
/// output, and every named object of its run (the run is the boundary the
/// host drew); a policy file starts from nothing instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// The profile this came from, for messages and events.
    pub name: String,
    /// TCP and UDP, by address and port; name lookup.
    pub network: NetworkPolicy,
    /// Which named objects may be opened, and for which operations.
    /// `None`: all objects of the run, all operations.
    pub ipc: Option<IpcGrants>,
    /// Whether and what the worker may spawn.
    pub spawn: SpawnPolicy,
    /// Bytes of stdout the host passes on; the rest is dropped with a notice.
    pub stdout_limit: Option<u64>,
    /// Bytes of stderr the host passes on; the rest is dropped with a notice.
    pub stderr_limit: Option<u64>,
    /// Most core instances, tables and linear memories the worker may create.
    pub counts: Counts,
    /// Deterministic metering: the worker may execute about this many wasm
    /// instructions ("fuel"), then it is killed. Same count, same cut-off,
    /// on any machine, unlike CPU time.
    pub fuel: Option<u64>,
    /// The worker's wasm stack, in bytes (deep recursion traps past it).
    pub stack: Option<u64>,
    /// A fixed clock and seeded randomness, so a run can be replayed.
    pub deterministic: Option<Deterministic>,
}

/// Resource limits of one worker. `None` means unlimited (up to the engine's
/// own ceilings, see [`EngineOptions`](crate::EngineOptions)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Total linear memory, in bytes. A grow past it fails inside the guest
    /// (as `malloc` returning NULL); a worker that dies of that is reported as
    /// killed by the memory limit.
    pub memory: Option<u64>,
    /// CPU time the worker's code may use (time spent waiting in host calls
    /// does not count). Past it the worker is killed.
    pub cpu_time: Option<Duration>,
    /// Wall-clock time from spawn. Past it the worker is killed, even while
    /// it waits in a host call.
    pub wall_time: Option<Duration>,
}

/// The smallest wasm stack a policy may ask for: one page. Zero would fail
/// every call, and is more likely a mistake than a wish.
pub const MIN_STACK: u64 = 4 << 10;
/// The largest wasm stack a policy may ask for. Each worker's async stack is
/// mapped at this size plus the host's frames; far beyond any real recursion
/// depth, and it keeps that sum from overflowing.
pub const MAX_STACK: u64 = 1 << 30;

/// Checks a wasm stack size against [`MIN_STACK`] and [`MAX_STACK`], with
/// a message that names the bound it is outside of.
pub fn check_stack(bytes: u64) -> Result<(), String> {
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    if bytes < MIN_STACK {
        return Err(format!(
            "a wasm stack of {} is below the smallest the engine accepts ({})",
            size(bytes),
            size(MIN_STACK)
        ));
    }
    if bytes > MAX_STACK {
        return Err(format!(
            "a wasm stack of {} is above the largest the engine accepts ({})",
            size(bytes),
            size(MAX_STACK)
        ));
    }
    Ok(())
}

/// Limits on the number of wasm objects one worker creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Core instances.
    pub instances: Option<u32>,
    /// Tables.
    pub tables: Option<u32>,
    /// Linear memories.
    pub memories: Option<u32>,
    /// Open handles (files, their streams, sockets); `None`:
    /// [`ledger::DEFAULT_MAX_HANDLES`].
    pub handles: Option<u32>,
    /// Host file descriptors the worker makes the host hold; `None`:
    /// [`ledger::DEFAULT_MAX_HOST_FDS`].
    pub host_fds: Option<u32>,
}

impl Counts {
    /// The limits of the worker's [`Ledger`](ledger::Ledger), defaults filled in.
    pub fn ledger_limits(&self) -> ledger::LedgerLimits {
        ledger::LedgerLimits {
            handles: self.handles.unwrap_or(ledger::DEFAULT_MAX_HANDLES) as usize,
            host_fds: self.host_fds.unwrap_or(ledger::DEFAULT_MAX_HOST_FDS) as usize,
        }
    }
}

/// Spawning of child workers. A child's memory cap and CPU time come out of
/// what its parent has left (see `docs/architecture.md`), so these counts
/// bound the number of workers, not the bytes or time they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnPolicy {
    /// Components (by the name the run registered them under) the worker
    /// may spawn. Empty: spawning is denied.
    pub components: Vec<String>,
    /// Most children alive at once.
    pub max_children: u32,
    /// Most descendants (children, grandchildren...) ever spawned in the
    /// tree below the worker that was started by the host.
    pub max_descendants: u32,
}

impl SpawnPolicy {
    /// `max-children` when a policy grants spawning but does not say.
    pub const DEFAULT_MAX_CHILDREN: u32 = 16;
    /// `max-descendants` when a policy grants spawning but does not say.
    pub const DEFAULT_MAX_DESCENDANTS: u32 = 64;
}

impl Default for SpawnPolicy {
    fn default() -> SpawnPolicy {
        SpawnPolicy {
            components: Vec::new(),
            max_children: SpawnPolicy::DEFAULT_MAX_CHILDREN,
            max_descendants: SpawnPolicy::DEFAULT_MAX_DESCENDANTS,
        }
    }
}

/// A fixed starting time and a seed: the worker's clocks start there and
/// advance by a fixed step per reading, its random bytes come from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deterministic {
    /// What the wall clock reads first.
    pub start: SystemTime,
    /// Seed of every random source.
    pub seed: u64,
}

impl Deterministic {
    /// How far the clocks advance at each reading.
    pub const STEP: Duration = Duration::from_micros(1);
}
