//! `corral.toml`: a topology of workers to start together with `corral up`.
//!
//! ```toml
//! [queues.jobs]         # named objects the workers share
//! capacity = 1000
//! max-message = "64KiB"
//! max-bytes = "16MiB"   # all its messages together (default 64MiB)
//!
//! [defaults]            # optional; applies to every worker
//! memory = "64MiB"
//! timeout = "10s"
//!
//! [[worker]]
//! name = "hello"
//! component = "hello.wasm"   # relative to this file
//! count = 10                 # named hello-1 .. hello-10
//! args = ["--greeting", "hi"]
//! env = { LANG = "C" }
//! cpu = "2s"
//! restart = "on-failure"     # never (default), on-failure or always
//! max-restarts = 5           # given up past 5 restarts within...
//! restart-within = "60s"     # ...60 s; backoff 10ms doubling to max-backoff 5s
//!
//! [[pool]]              # a task component as a pipeline stage
//! name = "square"
//! component = "square.wasm"
//! workers = 4                # instances square-1 .. square-4
//! input = "numbers"          # each message of this queue is one task...
//! output = "squares"         # ...and each result is put here, in order
//! stops = 1                  # empty messages put on `output` at the end
//! producers = ["numbers"]    # default: every [[worker]]
//! ```
//!
//! With a `[backend]` table (or `corral up --backend URL`), queues, locks,
//! semaphores, events and barriers live in Redis, shared with every host
//! that runs a manifest naming them in the same namespace:
//!
//! ```toml
//! [backend]
//! url = "redis://127.0.0.1:6379/0"
//! namespace = "shop"         # keeps deployments apart (default "default")
//! lease = "5s"               # visibility timeout and lock lease
//! default = "redis"          # or "local": then only objects that say
//!                            # backend = "redis" go to Redis
//! [queues.cache]
//! backend = "local"          # this one stays in this host
//! ```
//!
//! A pool's input ends at an empty message (the stop convention every guest
//! uses), when the input queue is closed and drained, or when every producer
//! worker has ended and the queue is empty. Then, once every result is out,
//! it puts `stops` empty messages on its output, so the next stage stops in
//! turn. A failed task puts nothing and makes `corral up` exit 1. If a worker
//! that is not a producer waits for the pool's output, list the producers:
//! by default the pool waits for every worker, that one included.
//!
//! Reading and checking go through the shared config loader (`config`);
//! the manifest knows the run it declares objects in, never the runtime or
//! the workers.

mod groups;
mod parse;

pub use groups::GroupEntry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::ipc::{Backend, IpcError, PipeConfig, QueueConfig};
use crate::policy::Limits;
use crate::restart::{Restart, RestartPolicy};
use crate::run::Run;
use crate::units::serde_opt;
use crate::vfs::MountSpec;

/// A parsed manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Limits applied to every worker unless the worker sets its own.
    #[serde(default)]
    pub defaults: LimitsEntry,
    /// The workers, in the order they are started.
    #[serde(rename = "worker", default)]
    pub workers: Vec<WorkerEntry>,
    /// Pools of task instances fed from a queue, started with the workers.
    #[serde(rename = "pool", default)]
    pub pools: Vec<PoolEntry>,
    /// Supervisor groups of the workers (see `groups`).
    #[serde(rename = "group", default)]
    pub groups: Vec<GroupEntry>,
    /// Named queues, by name.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueEntry>,
    /// Named pipes, by name.
    #[serde(default)]
    pub pipes: BTreeMap<String, PipeEntry>,
    /// Named locks, by name.
    #[serde(default)]
    pub locks: BTreeMap<String, LockEntry>,
    /// Named semaphores, by name.
    #[serde(default)]
    pub semaphores: BTreeMap<String, SemaphoreEntry>,
    /// Named events, by name.
    #[serde(default)]
    pub events: BTreeMap<String, EventEntry>,
    /// Named barriers, by name.
    #[serde(default)]
    pub barriers: BTreeMap<String, BarrierEntry>,
    /// Named conditions, by name.
    #[serde(default)]
    pub conditions: BTreeMap<String, ConditionEntry>,
    /// The run's shared in-memory tree.
    pub filesystem: Option<FilesystemEntry>,
    /// Where named objects live: Redis, to share them with other hosts.
    pub backend: Option<BackendEntry>,
}

/// `[backend]`: a Redis server for the run's named objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackendEntry {
    /// `redis://host:port/db`; `corral up --backend` overrides it.
    pub url: Option<String>,
    /// Keeps deployments sharing a server apart (default `default`).
    pub namespace: Option<String>,
    /// Visibility timeout of acknowledged queues and lease of locks.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub lease: Option<Duration>,
    /// Where objects without their own `backend` go (default: `redis`
    /// when there is a URL).
    pub default: Option<Placement>,
}

/// Where one object lives: `backend = "local"` or `"redis"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// In this host's process.
    Local,
    /// In the run's Redis server (`[backend]` or `--backend`).
    Redis,
}

/// `[filesystem]`: the run's shared tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesystemEntry {
    /// Seed the tree from this host directory (relative to the manifest).
    pub from: Option<PathBuf>,
    /// Save the tree to this host directory when the run ends.
    pub save: Option<PathBuf>,
    /// Most bytes the tree may hold.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_bytes: Option<u64>,
    /// Most files, directories and symlinks the tree may hold.
    pub max_files: Option<u64>,
}

/// `[queues.NAME]`: a bounded queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueueEntry {
    /// Messages held before `put` waits (default 1024).
    #[serde(default = "default_queue_capacity")]
    pub capacity: usize,
    /// Largest message accepted (default 1MiB).
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_message: Option<u64>,
    /// Bytes of all its messages together before `put` waits (default 64MiB).
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_bytes: Option<u64>,
    /// Redeliver messages whose consumer ended before `task-done`.
    #[serde(default)]
    pub acknowledged: bool,
    /// Where it lives, overriding `[backend] default`.
    pub backend: Option<Placement>,
}

/// `[pipes.NAME]`: a duplex pipe between two workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PipeEntry {
    /// The two workers that hold the ends; unset: the first two to open it.
    pub ends: Option<[String; 2]>,
    /// Give a restarted worker its end back (needs `ends`): the peer sees
    /// the pipe closed only once that worker has ended for good.
    #[serde(default)]
    pub regrant: bool,
    /// Messages buffered per direction (default 64).
    #[serde(default = "default_pipe_capacity")]
    pub capacity: usize,
    /// Largest message accepted (default 16MiB).
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_message: Option<u64>,
    /// Bytes buffered per direction before `send` waits (default 64MiB).
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_bytes: Option<u64>,
}

/// `[locks.NAME]`: a lock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockEntry {
    /// May the holder take it again (`RLock`)?
    #[serde(default)]
    pub reentrant: bool,
    /// Where it lives, overriding `[backend] default`.
    pub backend: Option<Placement>,
}

/// `[semaphores.NAME]`: a bounded semaphore.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SemaphoreEntry {
    /// Permits at the start.
    pub value: u32,
    /// The bound (default: `value`).
    pub max: Option<u32>,
    /// Where it lives, overriding `[backend] default`.
    pub backend: Option<Placement>,
}

/// `[events.NAME]`: an event flag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEntry {
    /// Where it lives, overriding `[backend] default`.
    pub backend: Option<Placement>,
}

/// `[barriers.NAME]`: a barrier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BarrierEntry {
    /// How many workers must arrive.
    pub parties: u32,
    /// Where it lives, overriding `[backend] default`.
    pub backend: Option<Placement>,
}

/// `[conditions.NAME]`: a condition over a declared lock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConditionEntry {
    /// The lock waiters hold.
    pub lock: String,
}

fn default_queue_capacity() -> usize {
    QueueConfig::default().capacity
}

fn default_pipe_capacity() -> usize {
    PipeConfig::default().capacity
}

/// Limits as written in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    /// Total linear memory per worker, e.g. `"64MiB"`.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub memory: Option<u64>,
    /// CPU-time budget per worker, e.g. `"2s"`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub cpu: Option<Duration>,
    /// Wall-clock timeout per worker, e.g. `"10s"`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub timeout: Option<Duration>,
}

/// The most copies one `[[worker]]` table may start: far more than a host
/// holds at once (12,000 by default), and few enough that their names fit in
/// memory.
pub const MAX_COUNT: u32 = 1_000_000;

/// One `[[worker]]` table: a component run `count` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkerEntry {
    /// The worker's name; with `count > 1`, copies are `name-1` .. `name-N`.
    pub name: String,
    /// The component, core module or `.wat` file, relative to the manifest.
    pub component: toml::Spanned<PathBuf>,
    /// How many copies to start.
    #[serde(default = "one")]
    pub count: u32,
    /// Arguments after `argv[0]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The worker's environment (nothing is inherited from the host).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A policy profile, `FILE` or `FILE#PROFILE` (FILE relative to the
    /// manifest); this worker's own limits, env and mounts take precedence.
    pub policy: Option<String>,
    /// Start only after every instance of these (earlier) workers ended:
    /// pipeline stages, a checker after the workers it checks.
    #[serde(default)]
    pub after: Vec<String>,
    /// Directories the worker sees, as `SOURCE:GUEST[:ro|rw]` (see
    /// [`MountSpec`]); host directories are relative to the manifest.
    #[serde(default, deserialize_with = "mount_specs")]
    pub mounts: Vec<MountSpec>,
    /// Total linear memory, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub memory: Option<u64>,
    /// CPU-time budget, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub cpu: Option<Duration>,
    /// Wall-clock timeout, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub timeout: Option<Duration>,
    /// Prefix each output line with `[name]` (the default), or pass the
    /// worker's stdout and stderr through byte for byte.
    #[serde(default = "yes")]
    pub prefix: bool,
    /// Start the worker again after it ends: `never` (the default; in a
    /// group, `on-failure`), `on-failure` or `always` (see
    /// [`RestartPolicy`]).
    pub restart: Option<Restart>,
    /// Give up after this many restarts within `restart-within`.
    #[serde(default)]
    pub max_restarts: Option<u32>,
    /// The window of `max-restarts`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub restart_within: Option<Duration>,
    /// The delay before a first restart, doubled for each restart in the
    /// window.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub backoff: Option<Duration>,
    /// The longest delay between restarts.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub max_backoff: Option<Duration>,
}

impl WorkerEntry {
    /// The restart policy its keys give, [`RestartPolicy::DEFAULT`]'s
    /// values where they are silent.
    pub fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::from_keys(
            self.restart.unwrap_or_default(),
            self.max_restarts,
            self.restart_within,
            (self.backoff, self.max_backoff),
        )
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// One `[[pool]]` table: a task component run by a pool of `workers`
/// instances over every message of the `input` queue, each result put on
/// the `output` queue, in input order (see [`crate::feed`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PoolEntry {
    /// The pool's name; its instances are `name-1` .. `name-N`.
    pub name: String,
    /// The task component (exports `corral:worker/task`), relative to the
    /// manifest.
    pub component: toml::Spanned<PathBuf>,
    /// Instances running tasks at once (default: the number of CPUs).
    pub workers: Option<usize>,
    /// The queue whose messages are the inputs.
    pub input: String,
    /// The queue each result is put on.
    pub output: String,
    /// Inputs per pool job (default 1).
    #[serde(default = "one_usize")]
    pub chunk: usize,
    /// Empty messages put on `output` when the input ends: one per
    /// consumer downstream (default 1).
    #[serde(default = "one")]
    pub stops: u32,
    /// The workers that put on `input`: once they have all ended and the
    /// queue is empty, the input is over even without a stop message.
    /// Default: every worker of the manifest.
    pub producers: Option<Vec<String>>,
    /// The instances' environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directories the instances see, as for a worker.
    #[serde(default, deserialize_with = "mount_specs")]
    pub mounts: Vec<MountSpec>,
    /// Total linear memory per instance, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub memory: Option<u64>,
    /// Fail a task that runs longer than this (its instance is replaced).
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub task_timeout: Option<Duration>,
    /// Runs of a task that trapped or timed out, on a fresh instance.
    #[serde(default)]
    pub retries: u32,
}

fn one_usize() -> usize {
    1
}

fn mount_specs<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<MountSpec>, D::Error> {
    Vec::<String>::deserialize(de)?
        .iter()
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Why a manifest cannot be used: the config error every config file
/// shares, naming the file, line and key.
pub type ManifestError = ConfigError;

impl Manifest {
    /// Declares every object of the manifest in `run`, which must be new,
    /// on the run's backend (see [`Manifest::declare_objects_with`]).
    pub fn declare_objects(&self, run: &Run) {
        self.declare_objects_with(run, None)
            .expect("manifest names are unique and checked by `parse`");
    }

    /// Declares every object of the manifest in `run`, which must be new:
    /// on the run's backend, or where the object's `backend` key says
    /// (`redis`: on `redis`, which must then be given).
    pub fn declare_objects_with(&self, run: &Run, redis: Option<&Backend>) -> Result<(), IpcError> {
        let objects = run.objects();
        let local = Backend::Local;
        let on = |kind: &str, name: &str, placement: Option<Placement>| match placement {
            None => Ok(objects.backend()),
            Some(Placement::Local) => Ok(&local),
            Some(Placement::Redis) => redis.ok_or_else(|| {
                IpcError::Invalid(format!(
                    "{kind} `{name}` has backend = \"redis\" but no Redis URL was given \
                     ([backend] url or --backend)"
                ))
            }),
        };
        for (name, q) in &self.queues {
            let config = QueueConfig {
                capacity: q.capacity,
                max_message: q
                    .max_message
                    .map_or(QueueConfig::default().max_message, |m| m as usize),
                max_bytes: q
                    .max_bytes
                    .map_or(QueueConfig::default().max_bytes, |m| m as usize),
                acknowledged: q.acknowledged,
            };
            objects.declare_queue_on(on("queue", name, q.backend)?, name, config)?;
        }
        for (name, p) in &self.pipes {
            let config = PipeConfig {
                capacity: p.capacity,
                max_message: p
                    .max_message
                    .map_or(PipeConfig::default().max_message, |m| m as usize),
                max_bytes: p
                    .max_bytes
                    .map_or(PipeConfig::default().max_bytes, |m| m as usize),
                ends: p.ends.clone(),
                regrant: p.regrant,
            };
            objects.declare_pipe(name, config)?;
        }
        for (name, l) in &self.locks {
            objects.declare_lock_on(on("lock", name, l.backend)?, name, l.reentrant)?;
        }
        for (name, s) in &self.semaphores {
            let max = s.max.unwrap_or(s.value);
            objects.declare_semaphore_on(on("semaphore", name, s.backend)?, name, s.value, max)?;
        }
        for (name, e) in &self.events {
            objects.declare_event_on(on("event", name, e.backend)?, name)?;
        }
        for (name, b) in &self.barriers {
            objects.declare_barrier_on(on("barrier", name, b.backend)?, name, b.parties)?;
        }
        for (name, c) in &self.conditions {
            objects.declare_condition(name, &c.lock)?;
        }
        Ok(())
    }
}

impl WorkerEntry {
    /// The names of this entry's workers: `name`, or `name-1` .. `name-N`.
    pub fn instance_names(&self) -> Vec<String> {
        if self.count == 1 {
            vec![self.name.clone()]
        } else {
            (1..=self.count)
                .map(|i| format!("{}-{i}", self.name))
                .collect()
        }
    }

    /// This worker's limits, falling back to the manifest's defaults.
    pub fn effective_limits(&self, defaults: &LimitsEntry) -> Limits {
        Limits {
            memory: self.memory.or(defaults.memory),
            cpu_time: self.cpu.or(defaults.cpu),
            wall_time: self.timeout.or(defaults.timeout),
        }
    }
}

#[cfg(test)]
mod tests;
