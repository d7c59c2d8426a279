//! `corral.toml`: a topology of workers to start together with `corral up`.
//!
//! ```toml
//! [queues.jobs]         # named objects the workers share
//! capacity = 1000
//! max-message = "64KiB"
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ipc::{Backend, IpcError, PipeConfig, QueueConfig};
use crate::policy::Limits;
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
    /// Messages buffered per direction (default 64).
    #[serde(default = "default_pipe_capacity")]
    pub capacity: usize,
    /// Largest message accepted (default 16MiB).
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub max_message: Option<u64>,
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

/// One `[[worker]]` table: a component run `count` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

fn one() -> u32 {
    1
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

/// Why a manifest could not be used. Messages name the file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}", path.display())]
    Io {
        /// The manifest.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or has a bad value.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// The TOML is well formed but describes something impossible.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The line of the offending key.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(path, &text)
    }

    /// Parses and checks manifest text; `path` is used in messages and to
    /// resolve component paths.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let line_of = |offset: usize| text[..offset.min(text.len())].lines().count().max(1);
        if manifest.workers.is_empty() {
            return Err(ManifestError::Invalid {
                path: path.to_owned(),
                line: 1,
                message:
                    "no workers: add at least one [[worker]] table with `name` and `component`"
                        .into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for worker in &mut manifest.workers {
            let line = line_of(worker.component.span().start);
            let invalid = |message: String| ManifestError::Invalid {
                path: path.to_owned(),
                line,
                message,
            };
            if worker.name.is_empty() || worker.name.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "worker name {:?} must be non-empty and contain no spaces",
                    worker.name
                )));
            }
            if !seen.insert(worker.name.clone()) {
                return Err(invalid(format!("two workers are named `{}`", worker.name)));
            }
            if worker.count == 0 {
                return Err(invalid(format!(
                    "worker `{}`: count must be at least 1",
                    worker.name
                )));
            }
            if let Some(unknown) = worker
                .after
                .iter()
                .find(|a| !seen.contains(*a) || **a == worker.name)
            {
                return Err(invalid(format!(
                    "worker `{}`: `after` names `{unknown}`, which is not a worker defined above it",
                    worker.name
                )));
            }
            let resolved = base.join(worker.component.get_ref());
            let span = worker.component.span();
            worker.component = toml::Spanned::new(span, resolved);
            worker.mounts = std::mem::take(&mut worker.mounts)
                .into_iter()
                .map(|m| m.relative_to(base))
                .collect();
        }
        manifest.check_pools(path, base, &line_of)?;
        if let Some(fs) = &mut manifest.filesystem {
            fs.from = fs.from.take().map(|d| base.join(d));
            fs.save = fs.save.take().map(|d| base.join(d));
        }
        let all_names: std::collections::HashSet<String> = manifest
            .workers
            .iter()
            .flat_map(WorkerEntry::instance_names)
            .collect();
        let whole_file = |message: String| ManifestError::Invalid {
            path: path.to_owned(),
            line: 1,
            message,
        };
        for (name, pipe) in &manifest.pipes {
            for end in pipe.ends.iter().flatten() {
                if !all_names.contains(end) {
                    return Err(whole_file(format!(
                        "[pipes.{name}]: end `{end}` is not the name of any worker"
                    )));
                }
            }
        }
        for (name, condition) in &manifest.conditions {
            if !manifest.locks.contains_key(&condition.lock) {
                return Err(whole_file(format!(
                    "[conditions.{name}]: lock `{}` is not declared in [locks]",
                    condition.lock
                )));
            }
        }
        for (name, semaphore) in &manifest.semaphores {
            if semaphore.max.is_some_and(|max| max < semaphore.value) {
                return Err(whole_file(format!(
                    "[semaphores.{name}]: max is below value"
                )));
            }
        }
        Ok(manifest)
    }

    /// Checks the `[[pool]]` tables and resolves their paths.
    fn check_pools(
        &mut self,
        path: &Path,
        base: &Path,
        line_of: &dyn Fn(usize) -> usize,
    ) -> Result<(), ManifestError> {
        let workers: std::collections::HashSet<&str> =
            self.workers.iter().map(|w| w.name.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for pool in &mut self.pools {
            let line = line_of(pool.component.span().start);
            let invalid = |message: String| ManifestError::Invalid {
                path: path.to_owned(),
                line,
                message,
            };
            let name = &pool.name;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "pool name {name:?} must be non-empty and contain no spaces"
                )));
            }
            if workers.contains(name.as_str()) || !seen.insert(name.clone()) {
                return Err(invalid(format!("two workers or pools are named `{name}`")));
            }
            for (key, queue) in [("input", &pool.input), ("output", &pool.output)] {
                if !self.queues.contains_key(queue) {
                    return Err(invalid(format!(
                        "pool `{name}`: {key} queue `{queue}` is not declared in [queues]"
                    )));
                }
            }
            if pool.input == pool.output {
                return Err(invalid(format!(
                    "pool `{name}`: input and output are both `{}`",
                    pool.input
                )));
            }
            if pool.workers == Some(0) || pool.chunk == 0 {
                return Err(invalid(format!(
                    "pool `{name}`: workers and chunk must be at least 1"
                )));
            }
            if let Some(unknown) = pool
                .producers
                .iter()
                .flatten()
                .find(|p| !workers.contains(p.as_str()))
            {
                return Err(invalid(format!(
                    "pool `{name}`: producer `{unknown}` is not a [[worker]] of this manifest"
                )));
            }
            let span = pool.component.span();
            pool.component = toml::Spanned::new(span, base.join(pool.component.get_ref()));
            pool.mounts = std::mem::take(&mut pool.mounts)
                .into_iter()
                .map(|m| m.relative_to(base))
                .collect();
        }
        Ok(())
    }

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
                ends: p.ends.clone(),
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("dir/corral.toml"), text)
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"
[defaults]
memory = "64MiB"
timeout = "10s"

[[worker]]
name = "hello"
component = "hello.wasm"
count = 3
args = ["a"]
env = { K = "V" }
cpu = "2s"
"#,
        )
        .unwrap();
        let w = &m.workers[0];
        assert_eq!(w.component.get_ref(), Path::new("dir/hello.wasm"));
        assert_eq!(w.instance_names(), ["hello-1", "hello-2", "hello-3"]);
        let limits = w.effective_limits(&m.defaults);
        assert_eq!(limits.memory, Some(64 << 20));
        assert_eq!(limits.cpu_time, Some(Duration::from_secs(2)));
        assert_eq!(limits.wall_time, Some(Duration::from_secs(10)));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncuont = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("cuont"), "{err}");
    }

    #[test]
    fn bad_size_names_line() {
        let err = parse(
            "[defaults]\nmemory = \"lots\"\n[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`lots` is not a size"), "{err}");
    }

    #[test]
    fn objects_are_declared_in_the_run() {
        let m = parse(
            r#"
[[worker]]
name = "w"
component = "w.wasm"
count = 2

[queues.jobs]
capacity = 10
max-message = "1KiB"
acknowledged = true

[pipes.chat]
ends = ["w-1", "w-2"]

[locks.state]
[conditions.ready]
lock = "state"
[semaphores.slots]
value = 2
[events.go]
[barriers.start]
parties = 2
"#,
        )
        .unwrap();
        let run = Run::new();
        m.declare_objects(&run);
        let q = run.objects().queue("jobs").unwrap();
        assert_eq!(q.capacity(), 10);
        assert!(q.is_acknowledged());
        assert!(run.objects().pipe("chat").is_ok());
        assert!(run.objects().condition("ready").is_ok());
        assert_eq!(run.objects().semaphore("slots").unwrap().value(), 2);
        assert_eq!(run.objects().barrier("start").unwrap().parties(), 2);
        assert!(run.objects().event("go").is_ok());
    }

    #[test]
    fn backend_table_and_object_placement() {
        let m = parse(
            "[backend]\nurl = \"redis://127.0.0.1:1/0\"\nnamespace = \"shop\"\nlease = \"2s\"\n\
             default = \"local\"\n[queues.jobs]\nbackend = \"redis\"\n[locks.l]\nbackend = \"local\"\n\
             [[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n",
        )
        .unwrap();
        let backend = m.backend.as_ref().unwrap();
        assert_eq!(backend.namespace.as_deref(), Some("shop"));
        assert_eq!(backend.lease, Some(Duration::from_secs(2)));
        assert_eq!(backend.default, Some(Placement::Local));
        assert_eq!(m.queues["jobs"].backend, Some(Placement::Redis));
        // A Redis object without a Redis server is an error that says so.
        let err = m.declare_objects_with(&Run::new(), None).unwrap_err();
        assert!(err.to_string().contains("no Redis URL"), "{err}");
        let err = parse("[backend]\nurl = 1\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("url"), "{err}");
        assert!(
            parse(
                "[pipes.p]\nbackend = \"redis\"\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn object_references_are_checked() {
        let base = "[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n";
        let err = parse(&format!("{base}[pipes.p]\nends = [\"w\", \"ghost\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("end `ghost` is not the name of any worker"),
            "{err}"
        );
        let err = parse(&format!("{base}[conditions.c]\nlock = \"nope\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lock `nope` is not declared"), "{err}");
        let err = parse(&format!("{base}[queues.q]\ncapacityy = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `capacityy`"), "{err}");
    }

    #[test]
    fn after_names_earlier_workers_only() {
        let two = "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[worker]]\nname = \"b\"\ncomponent = \"b.wasm\"\n";
        let ok = parse(&format!("{two}after = [\"a\"]\n")).unwrap();
        assert_eq!(ok.workers[1].after, ["a"]);
        let err = parse(&format!("{two}after = [\"c\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`after` names `c`"), "{err}");
        let err = parse(&format!("{two}after = [\"b\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`after` names `b`"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_line() {
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncount = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dir/corral.toml:3: worker `a`: count must be at least 1"
        );
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[worker]]\nname = \"a\"\ncomponent = \"b.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "dir/corral.toml:6: two workers are named `a`");
        assert!(parse("").unwrap_err().to_string().contains("no workers"));
    }

    const STAGES: &str =
        "[queues.a]\n[queues.b]\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n";

    #[test]
    fn pools_take_defaults_and_resolve_paths() {
        let m = parse(&format!(
            "{STAGES}[[pool]]\nname = \"sq\"\ncomponent = \"sq.wasm\"\ninput = \"a\"\noutput = \"b\"\n\
             workers = 3\nproducers = [\"w\"]\nmounts = [\"data:/data\"]\ntask-timeout = \"2s\"\n"
        ))
        .unwrap();
        let p = &m.pools[0];
        assert_eq!(p.component.get_ref(), Path::new("dir/sq.wasm"));
        assert_eq!((p.workers, p.chunk, p.stops), (Some(3), 1, 1));
        assert_eq!(p.producers.as_deref(), Some(&["w".to_string()][..]));
        assert_eq!(p.task_timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.mounts[0].guest_path, "/data");
    }

    #[test]
    fn pool_errors_name_the_line_and_the_problem() {
        let pool = |rest: &str| {
            parse(&format!(
                "{STAGES}[[pool]]\nname = \"sq\"\ncomponent = \"sq.wasm\"\n{rest}"
            ))
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            pool("input = \"a\"\noutput = \"c\"\n"),
            "dir/corral.toml:8: pool `sq`: output queue `c` is not declared in [queues]"
        );
        assert!(pool("input = \"a\"\noutput = \"a\"\n").contains("input and output are both `a`"));
        assert!(
            pool("input = \"a\"\noutput = \"b\"\nproducers = [\"x\"]\n")
                .contains("producer `x` is not a [[worker]]")
        );
        assert!(pool("input = \"a\"\noutput = \"b\"\nworkers = 0\n").contains("at least 1"));
        assert!(pool("output = \"b\"\n").contains("missing field `input`"));
        let err = parse(&format!(
            "{STAGES}[[pool]]\nname = \"w\"\ncomponent = \"w.wasm\"\ninput = \"a\"\noutput = \"b\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("two workers or pools are named `w`"), "{err}");
    }
}
