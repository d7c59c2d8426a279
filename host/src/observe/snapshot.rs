//! What a snapshot of a host holds: plain data, serialized as the control
//! socket's answer to `ps` and read back by `corral ps` and `--metrics`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ipc::ObjectStats;

/// Everything a host can tell about itself at one instant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time since the runtime was created, in milliseconds.
    pub uptime_ms: u64,
    /// Live workers and those that ended in the last minute, by id.
    pub workers: Vec<WorkerSnapshot>,
    /// The named objects of every run the workers belong to.
    pub objects: Vec<ObjectStats>,
    /// Pools of task instances.
    pub pools: Vec<PoolSnapshot>,
    /// Policy denials of the last minute, oldest first (at most 1,000).
    pub denials: Vec<Denial>,
    /// Counts since the start, for counters that must never go down.
    pub totals: Totals,
}

/// One worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    /// Host-unique id.
    pub id: u64,
    /// Its name (`w-3`, `parent/child`).
    pub name: String,
    /// The manifest entry it is an instance of: its name without the `-N`
    /// suffix, and for a child its own part after the last `/`.
    pub group: String,
    /// `running` (in wasm or host code now), `waiting` (in a blocking IPC
    /// call, see `waiting_on`), `idle` (waiting on something else: a
    /// timer, a socket, a restart backoff) or `exited`.
    pub state: String,
    /// The blocking call, e.g. `queue.get jobs`.
    pub waiting_on: Option<String>,
    /// How long it has been in that call, in milliseconds.
    pub waiting_ms: Option<u64>,
    /// How it ended, once it has.
    pub status: Option<String>,
    /// The status's kind, as metrics label it (`ok`, `error`, `trapped`,
    /// `killed-cpu-time`...).
    pub status_kind: Option<String>,
    /// CPU time used by its code, over all its starts, in nanoseconds.
    pub cpu_ns: u64,
    /// Linear memory held now, in bytes.
    pub memory_bytes: u64,
    /// The most linear memory held at once (this start), in bytes.
    pub peak_memory_bytes: u64,
    /// Open filesystem handles, sockets and lookups.
    pub handles: u64,
    /// Host file descriptors held for it.
    pub host_fds: u64,
    /// Bytes held in its private in-memory trees (`@scratch`).
    pub private_bytes: u64,
    /// Time since it was spawned, in milliseconds (until its end).
    pub uptime_ms: u64,
    /// Its policy profile (empty: none).
    pub profile: String,
    /// Whether a memory grow or a handle was refused by a limit.
    pub limit_hit: bool,
}

/// One pool of task instances.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The pool's name (its instances' name).
    pub name: String,
    /// Instances running tasks at once.
    pub size: u64,
    /// Tasks that returned `ok`.
    pub succeeded: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Instances started, replacements included.
    pub instances_started: u64,
    /// CPU time of all its instances so far (ended ones included), in ns.
    #[serde(default)]
    pub cpu_ns: u64,
    /// Linear memory its live instances hold, in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Instances alive now (started lazily, so 0 before the first task).
    #[serde(default)]
    pub instances_alive: u64,
}

/// One refusal of a worker's policy or limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Denial {
    /// The worker's name.
    pub worker: String,
    /// The rule that said no (`network.connect`, `max-handles`...).
    pub rule: String,
    /// What was attempted.
    pub action: String,
    /// How long ago, in milliseconds.
    pub ago_ms: u64,
}

/// Monotonic counts since the host started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Workers that ended, by status kind and group.
    pub exits: BTreeMap<String, BTreeMap<String, u64>>,
    /// Denials by rule (`suppressed` counts those rate-limited away).
    pub denials: BTreeMap<String, u64>,
    /// Workers killed by a limit, by limit (`cpu-time`, `memory`...).
    pub limit_kills: BTreeMap<String, u64>,
    /// CPU time of workers no longer in the snapshot, by group, in
    /// nanoseconds: with the listed workers' it makes a group's total.
    pub retired_cpu_ns: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Workers that have not ended.
    pub fn alive(&self) -> impl Iterator<Item = &WorkerSnapshot> {
        self.workers.iter().filter(|w| w.state != "exited")
    }
}
