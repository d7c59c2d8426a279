//! Seeing what the workers of a host are doing: a table of its workers
//! (live, and ended in the last minute), the runs whose named objects they
//! use, its pools, and recent denials, read into a [`Snapshot`] on demand.
//!
//! Nothing here sits on a hot path: the table changes once per spawn and
//! per exit, denials are already rate-limited per worker, and a snapshot
//! reads the workers' meters and ledgers (relaxed atomics) and each
//! object's own counters. What a worker waits on is recorded only when a
//! call blocks ([`Activity`]). `metrics` renders a snapshot for Prometheus.

mod activity;
mod endpoint;
pub mod metrics;
mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

pub use activity::Activity;
pub use endpoint::MetricsServer;
pub use snapshot::{Denial, PoolSnapshot, Snapshot, Totals, WorkerSnapshot};

use crate::events::{Event, EventSink};
use crate::ipc::Registry;
use crate::ledger::{Kind, Ledger};
use crate::meter::WorkerMeter;
use crate::status::{ExitStatus, KillReason};
use crate::vfs::ByteBudget;
use crate::worker::Worker;

/// How long an ended worker stays in snapshots, and how far back denials go.
const RECENT: Duration = Duration::from_secs(60);
/// At most this many ended workers and denials are kept, however recent.
const RECENT_MAX: usize = 1000;

/// A pool as the observatory sees it: its counts (until it is gone:
/// `None`), and how to terminate it.
struct WatchedPool {
    stats: Box<dyn Fn() -> Option<PoolSnapshot> + Send + Sync>,
    terminate: Box<dyn Fn() + Send + Sync>,
}

/// What one host knows of its workers, for snapshots. One per runtime.
pub struct Observatory {
    created: Instant,
    workers: Mutex<BTreeMap<u64, Arc<Watched>>>,
    /// Ended workers, in the order they ended, for pruning.
    ended: Mutex<VecDeque<u64>>,
    runs: Mutex<Vec<Weak<Registry>>>,
    pools: Mutex<Vec<WatchedPool>>,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    denials: VecDeque<(Instant, String, String, String)>,
    totals: Totals,
}

/// One worker as the observatory sees it.
pub(crate) struct Watched {
    worker: Worker,
    group: String,
    profile: String,
    spawned: Instant,
    /// What the worker waits on; the IPC bindings of each start share it.
    pub activity: Arc<Activity>,
    /// The meters of its current start.
    start: Mutex<Option<Start>>,
    /// CPU time of its earlier starts, in ns.
    cpu_before_ns: AtomicU64,
    ended: OnceLock<Instant>,
}

/// The meters one start of a worker fills. The ledger is held weakly: it
/// holds the worker's denial reporter, whose last summary is sent when the
/// store drops it, and a snapshot must not keep that alive.
struct Start {
    meter: Arc<WorkerMeter>,
    ledger: Weak<Ledger>,
    private_bytes: Arc<ByteBudget>,
}

impl Watched {
    /// Records the meters of a new start of the worker.
    pub fn started(
        &self,
        meter: Arc<WorkerMeter>,
        ledger: Arc<Ledger>,
        private_bytes: Arc<ByteBudget>,
    ) {
        let previous = self
            .start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Start {
                meter,
                ledger: Arc::downgrade(&ledger),
                private_bytes,
            });
        if let Some(previous) = previous {
            self.cpu_before_ns
                .fetch_add(previous.meter.booked_cpu_ns(), Ordering::Relaxed);
        }
    }

    fn cpu_ns(&self) -> u64 {
        let current = self.start.lock().unwrap_or_else(|e| e.into_inner());
        let now = current.as_ref().map_or(0, |s| s.meter.booked_cpu_ns());
        self.cpu_before_ns.load(Ordering::Relaxed) + now
    }

    fn snapshot(&self, id: u64) -> WorkerSnapshot {
        let mut w = WorkerSnapshot {
            id,
            name: self.worker.name().to_string(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            cpu_ns: self.cpu_ns(),
            uptime_ms: millis(self.ended.get().map_or_else(
                || self.spawned.elapsed(),
                |end| end.duration_since(self.spawned),
            )),
            ..WorkerSnapshot::default()
        };
        if let Some(start) = &*self.start.lock().unwrap_or_else(|e| e.into_inner()) {
            w.memory_bytes = start.meter.memory_held();
            w.peak_memory_bytes = start.meter.peak_memory();
            if let Some(ledger) = start.ledger.upgrade() {
                w.handles = ledger.held(Kind::Handle) as u64;
                w.host_fds = ledger.held(Kind::HostFd) as u64;
            }
            w.private_bytes = start.private_bytes.used();
            w.limit_hit = start.meter.denied_memory().is_some();
            if start.meter.is_polled() {
                w.state = "running".into();
            }
        }
        if let Some(status) = self.worker.try_status() {
            w.state = "exited".into();
            w.status_kind = Some(status_kind(&status));
            w.status = Some(status.summary());
            w.memory_bytes = 0;
            (w.handles, w.host_fds, w.private_bytes) = (0, 0, 0);
        } else if let Some((op, object, waited)) = self.activity.current() {
            w.state = "waiting".into();
            w.waiting_on = Some(format!("{op} {object}"));
            w.waiting_ms = Some(millis(waited));
        } else if w.state.is_empty() {
            w.state = "idle".into();
        }
        w
    }
}

impl Default for Observatory {
    fn default() -> Self {
        Observatory {
            created: Instant::now(),
            workers: Mutex::default(),
            ended: Mutex::default(),
            runs: Mutex::default(),
            pools: Mutex::default(),
            recent: Mutex::default(),
        }
    }
}

impl Observatory {
    /// Adds a worker just spawned into `run` (its named objects), under
    /// policy `profile`. Returns what its starts report to.
    pub(crate) fn watch(&self, worker: &Worker, run: Arc<Registry>, profile: &str) -> Arc<Watched> {
        let watched = Arc::new(Watched {
            worker: worker.clone(),
            group: group_of(worker.name()),
            profile: profile.to_string(),
            spawned: Instant::now(),
            activity: Arc::default(),
            start: Mutex::new(None),
            cpu_before_ns: AtomicU64::new(0),
            ended: OnceLock::new(),
        });
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(worker.id(), watched.clone());
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.retain(|r| r.strong_count() > 0);
        if !runs.iter().any(|r| r.as_ptr() == Arc::as_ptr(&run)) {
            runs.push(Arc::downgrade(&run));
        }
        watched
    }

    /// Adds a pool, read through `stats` until it returns `None` (the pool
    /// is gone), stopped through `terminate`.
    pub(crate) fn watch_pool(
        &self,
        stats: impl Fn() -> Option<PoolSnapshot> + Send + Sync + 'static,
        terminate: impl Fn() + Send + Sync + 'static,
    ) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(WatchedPool {
                stats: Box::new(stats),
                terminate: Box::new(terminate),
            });
    }

    /// Terminates the pools named `name` (every pool: `None`); returns
    /// the names of those it found.
    pub fn terminate_pools(&self, name: Option<&str>) -> Vec<String> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut stopped = Vec::new();
        for pool in pools.iter() {
            if let Some(stats) = (pool.stats)()
                && name.is_none_or(|n| n == stats.name)
            {
                (pool.terminate)();
                stopped.push(stats.name);
            }
        }
        stopped
    }

    /// Time since the observatory (its runtime) was created.
    pub fn uptime(&self) -> Duration {
        self.created.elapsed()
    }

    /// Every worker still in the table (live, or ended within a minute).
    pub fn workers(&self) -> Vec<Worker> {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|w| w.worker.clone())
            .collect()
    }

    /// The host's state now. Holds the worker table's lock only to copy it.
    pub fn snapshot(&self) -> Snapshot {
        self.prune();
        let watched: Vec<(u64, Arc<Watched>)> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        let workers = watched.iter().map(|(id, w)| w.snapshot(*id)).collect();
        let runs: Vec<Arc<Registry>> = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let objects = runs.iter().flat_map(|r| r.stats()).collect();
        let pools = self.pools();
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        Snapshot {
            uptime_ms: millis(self.created.elapsed()),
            workers,
            objects,
            pools,
            denials: recent
                .denials
                .iter()
                .map(|(at, worker, rule, action)| Denial {
                    worker: worker.clone(),
                    rule: rule.clone(),
                    action: action.clone(),
                    ago_ms: millis(now.duration_since(*at)),
                })
                .collect(),
            totals: recent.totals.clone(),
        }
    }

    /// The pools alive now, forgetting those gone.
    pub fn pools(&self) -> Vec<PoolSnapshot> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        pools.retain(|pool| match (pool.stats)() {
            Some(pool) => {
                seen.push(pool);
                true
            }
            None => false,
        });
        seen
    }

    /// Drops ended workers past a minute (or past the most kept), keeping
    /// their CPU time in their group's total.
    fn prune(&self) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&id) = ended.front() {
            let old = workers
                .get(&id)
                .and_then(|w| w.ended.get())
                .is_none_or(|at| at.elapsed() > RECENT);
            if !old && ended.len() <= RECENT_MAX {
                break;
            }
            ended.pop_front();
            if let Some(w) = workers.remove(&id) {
                *recent
                    .totals
                    .retired_cpu_ns
                    .entry(w.group.clone())
                    .or_default() += w.cpu_ns();
            }
        }
        let now = Instant::now();
        while recent
            .denials
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > RECENT)
        {
            recent.denials.pop_front();
        }
    }

    /// Counts what `event` says ended or was refused.
    fn record(&self, event: &Event) {
        match event {
            Event::Exited {
                id, name, status, ..
            } => {
                let watched = self
                    .workers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
                    .cloned();
                if let Some(w) = &watched {
                    let _ = w.ended.set(Instant::now());
                    self.ended
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(*id);
                }
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                let totals = &mut recent.totals;
                *totals
                    .exits
                    .entry(status_kind(status))
                    .or_default()
                    .entry(group_of(name))
                    .or_default() += 1;
                if let ExitStatus::Killed { reason } = status
                    && let Some(limit) = limit_of(reason)
                {
                    *totals.limit_kills.entry(limit.into()).or_default() += 1;
                }
                drop(recent);
                // Here too, not only in snapshots: a host nobody watches
                // must not keep every worker it ever ran.
                self.prune();
            }
            Event::Denied {
                name, rule, action, ..
            } => {
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                *recent.totals.denials.entry(rule.clone()).or_default() += 1;
                if recent.denials.len() >= RECENT_MAX {
                    recent.denials.pop_front();
                }
                recent.denials.push_back((
                    Instant::now(),
                    name.clone(),
                    rule.clone(),
                    action.clone(),
                ));
            }
            Event::Suppressed { denials, .. } => {
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                *recent
                    .totals
                    .denials
                    .entry("suppressed".into())
                    .or_default() += denials;
            }
            _ => {}
        }
    }
}

/// The runtime's event sink: records into the observatory, then passes the
/// event on to the sink the embedder gave, if any.
pub(crate) struct Recorder {
    pub observatory: Arc<Observatory>,
    pub next: Option<Arc<dyn EventSink>>,
}

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        self.observatory.record(event);
        if let Some(next) = &self.next {
            next.event(event);
        }
    }
}

/// The manifest entry a worker name comes from: `w-3` is `w`, a child
/// `w-3/child-2` is `child`. Bounds metric labels by entries, not workers.
pub fn group_of(name: &str) -> String {
    let own = name.rsplit('/').next().unwrap_or(name);
    match own.rsplit_once('-') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base.to_string()
        }
        _ => own.to_string(),
    }
}

/// How metrics label an ending: `ok`, `error`, `trapped`, `failed-to-start`
/// or `killed-<reason>`.
pub fn status_kind(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Exited { code: 0 } => "ok".into(),
        ExitStatus::Exited { .. } => "error".into(),
        ExitStatus::Trapped { .. } => "trapped".into(),
        ExitStatus::FailedToStart { .. } => "failed-to-start".into(),
        ExitStatus::Killed { reason } => format!(
            "killed-{}",
            match reason {
                KillReason::Terminated => "terminated",
                KillReason::BrokenPipe { .. } => "broken-pipe",
                other => limit_of(other).unwrap_or("other"),
            }
        ),
    }
}

/// The limit a kill reason names, if it is one.
fn limit_of(reason: &KillReason) -> Option<&'static str> {
    match reason {
        KillReason::CpuTime { .. } => Some("cpu-time"),
        KillReason::WallTime { .. } => Some("wall-time"),
        KillReason::Fuel { .. } => Some("fuel"),
        KillReason::Memory { .. } => Some("memory"),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_manifest_entries() {
        assert_eq!(group_of("w-3"), "w");
        assert_eq!(group_of("w"), "w");
        assert_eq!(group_of("my-worker"), "my-worker");
        assert_eq!(group_of("my-worker-12"), "my-worker");
        assert_eq!(group_of("w-3/child-2"), "child");
        assert_eq!(group_of("-3"), "-3");
    }
}
