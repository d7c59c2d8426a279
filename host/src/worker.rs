//! Workers: spawn a component as a sandboxed worker, then join, terminate or
//! poll it. One worker's failure never reaches the host or its peers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::output::{OutputPipe, Stdio};
use crate::policy::Policy;
use crate::run::Run;
use crate::runtime::WorkerMeter;
use crate::vfs::MountSpec;

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

/// Everything needed to start one worker from a [`Program`](crate::Program).
#[derive(Debug, Clone, Default)]
pub struct WorkerSpec {
    /// The worker's name: its `[name]` output prefix, `argv[0]`, and what
    /// `corral:worker/process.name` returns.
    pub name: String,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The worker's entire environment. Nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub limits: Limits,
    /// Where stdout and stderr go.
    pub stdio: Stdio,
    /// The run whose named objects and file tree the worker may use.
    /// Workers that do not share a run share nothing.
    pub run: Run,
    /// What the worker sees through `wasi:filesystem`, one preopen each.
    /// Empty (the default): no filesystem at all.
    pub mounts: Vec<MountSpec>,
    /// What else it may reach (network, IPC, spawning, output caps...).
    pub policy: Arc<Policy>,
}

impl WorkerSpec {
    /// A spec with a name and nothing else: no args, no env, no limits.
    pub fn new(name: impl Into<String>) -> WorkerSpec {
        WorkerSpec {
            name: name.into(),
            ..WorkerSpec::default()
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets where output goes.
    pub fn stdio(mut self, stdio: Stdio) -> Self {
        self.stdio = stdio;
        self
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: MountSpec) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Puts the worker in `run`, with the objects declared there.
    pub fn run(mut self, run: &Run) -> Self {
        self.run = run.clone();
        self
    }
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExitStatus {
    /// `main` returned or the worker called `exit`.
    Exited {
        /// The exit code (0 is success).
        code: i32,
    },
    /// The worker's code trapped: `unreachable`, a Rust panic, an
    /// out-of-bounds access, a stack overflow...
    Trapped {
        /// What the trap was.
        message: String,
        /// Where in the worker's wasm it happened, innermost frame first.
        backtrace: Vec<Frame>,
    },
    /// The host stopped the worker.
    Killed {
        /// Which limit, or `terminate`.
        reason: KillReason,
    },
    /// The worker never ran: the host could not instantiate it.
    FailedToStart {
        /// Why.
        reason: String,
    },
}

/// Why the host stopped a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum KillReason {
    /// [`Worker::terminate`] was called.
    Terminated,
    /// The worker used more CPU time than its budget.
    CpuTime {
        /// The budget, in milliseconds.
        limit_ms: u64,
    },
    /// The worker ran longer than its wall-clock timeout.
    WallTime {
        /// The timeout, in milliseconds.
        limit_ms: u64,
    },
    /// The worker used up its fuel (its policy's instruction budget).
    Fuel {
        /// The budget.
        limit: u64,
    },
    /// The worker died after the host refused it memory past its cap.
    Memory {
        /// The cap, in bytes.
        limit: u64,
        /// The total the refused grow asked for, in bytes.
        requested: u64,
        /// How the worker died of it (its trap message).
        detail: String,
    },
}

/// One frame of a worker's wasm backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The function's name from the module's name section, demangled.
    pub function: Option<String>,
    /// The core module's name, when it has one.
    pub module: Option<String>,
    /// The function's index in its module.
    pub index: u32,
    /// Byte offset of the trapping instruction within the function.
    pub offset: Option<usize>,
}

impl ExitStatus {
    /// Whether the worker exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited { code: 0 })
    }

    /// A one-line summary, e.g. `exited 0` or `killed: CPU time limit 2s`.
    pub fn summary(&self) -> String {
        match self {
            ExitStatus::Exited { code } => format!("exited {code}"),
            ExitStatus::Trapped { message, .. } => format!("trapped: {message}"),
            ExitStatus::Killed { reason } => format!("killed: {reason}"),
            ExitStatus::FailedToStart { reason } => format!("failed to start: {reason}"),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())?;
        if let ExitStatus::Trapped { backtrace, .. } = self {
            if !backtrace.is_empty() {
                f.write_str("\nwasm backtrace:")?;
            }
            // Deep recursion fills the backtrace with one frame repeated:
            // show each run of identical frames once, with its count.
            let mut i = 0;
            while i < backtrace.len() {
                let run = backtrace[i..]
                    .iter()
                    .take_while(|fr| **fr == backtrace[i])
                    .count();
                write!(f, "\n  {i:>2}: {}", backtrace[i])?;
                if run > 1 {
                    write!(f, "  (x{run}, frames {i}-{})", i + run - 1)?;
                }
                i += run;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "<function {}>", self.index)?,
        }
        if let Some(module) = &self.module {
            write!(f, " in {module}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at +{offset:#x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillReason::Terminated => write!(f, "terminated"),
            KillReason::CpuTime { limit_ms } => {
                write!(f, "CPU time limit of {} exceeded", human_ms(*limit_ms))
            }
            KillReason::Fuel { limit } => write!(f, "fuel limit of {limit} exhausted"),
            KillReason::WallTime { limit_ms } => {
                write!(f, "wall-time limit of {} exceeded", human_ms(*limit_ms))
            }
            KillReason::Memory {
                limit,
                requested,
                detail,
            } => write!(
                f,
                "memory limit of {} exceeded (asked for {} in all): {detail}",
                bytesize::ByteSize(*limit).display().iec(),
                bytesize::ByteSize(*requested).display().iec()
            ),
        }
    }
}

fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// What the host measured of a worker that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerReport {
    /// How it ended.
    pub status: ExitStatus,
    /// Wall time from spawn to exit.
    pub duration: Duration,
    /// CPU time its code used.
    pub cpu_time: Duration,
    /// The most linear memory it held at once, in bytes.
    pub peak_memory: u64,
}

/// Shared between a worker's task and its handles.
pub(crate) struct WorkerShared {
    pub id: u64,
    pub name: Arc<str>,
    pub report: watch::Sender<Option<WorkerReport>>,
    pub kill: Notify,
    pub terminated: AtomicBool,
    pub stdout: OutputPipe,
    pub stderr: OutputPipe,
}

/// A handle to a running (or finished) worker. Cheap to clone; dropping every
/// handle does not stop the worker.
#[derive(Clone)]
pub struct Worker {
    pub(crate) shared: Arc<WorkerShared>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Worker {
    /// The host-unique id of this worker.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether the worker is still running (or starting). Never blocks.
    pub fn is_alive(&self) -> bool {
        self.shared.report.borrow().is_none()
    }

    /// Waits until the worker ends and returns how it ended. Waiting holds no
    /// thread; it is safe to join from many tasks at once.
    pub async fn join(&self) -> ExitStatus {
        self.wait_report().await.status
    }

    /// Like [`join`](Self::join), but gives up after `timeout` and returns
    /// `None`; the worker keeps running.
    pub async fn join_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.join()).await.ok()
    }

    /// Waits until the worker ends and returns everything measured about it.
    pub async fn wait_report(&self) -> WorkerReport {
        let mut rx = self.shared.report.subscribe();
        let report = rx
            .wait_for(Option::is_some)
            .await
            .expect("a worker's task always publishes its report before dropping the sender");
        report.clone().expect("wait_for returned a Some")
    }

    /// The status if the worker has ended, without waiting.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.shared
            .report
            .borrow()
            .as_ref()
            .map(|r| r.status.clone())
    }

    /// Asks the worker to stop. Returns at once; [`join`](Self::join) to wait.
    /// Works whether the worker is running wasm (it is interrupted at the next
    /// epoch tick, within milliseconds) or waiting inside a host call.
    pub fn terminate(&self) {
        self.shared.terminated.store(true, Ordering::Relaxed);
        self.shared.kill.notify_one();
    }

    /// What the worker wrote to stdout, when spawned with [`Stdio::Capture`].
    pub fn stdout(&self) -> Vec<u8> {
        self.shared.stdout.captured()
    }

    /// What the worker wrote to stderr, when spawned with [`Stdio::Capture`].
    pub fn stderr(&self) -> Vec<u8> {
        self.shared.stderr.captured()
    }
}

/// Books the CPU time of each poll of the wrapped future: the time the
/// worker's wasm (and the synchronous host code it calls) occupied a thread.
pub(crate) struct Metered<F> {
    pub inner: Pin<Box<F>>,
    pub meter: Arc<WorkerMeter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.poll_started();
        let result = self.inner.as_mut().poll(cx);
        self.meter.poll_ended();
        result
    }
}

/// Runs a worker's task to its end. A panic in the host while it runs
/// (a bug) becomes that worker's failure, reported like any other ending,
/// so whoever joins it is answered and its peers and the run carry on.
pub(crate) async fn supervise(shared: Arc<WorkerShared>, task: impl Future<Output = ()>) {
    use futures::FutureExt;
    let started = Instant::now();
    // Unwind safety: the task owns the worker's store; what it shares with
    // other workers (named objects, the tree) stays consistent at each of
    // their own awaits, and the worker never runs again.
    let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await else {
        return;
    };
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    shared.stdout.finish();
    shared.stderr.finish();
    let report = WorkerReport {
        status: ExitStatus::Trapped {
            message: format!("internal error in the host: {message} (a bug in corral)"),
            backtrace: Vec::new(),
        },
        duration: started.elapsed(),
        cpu_time: Duration::ZERO,
        peak_memory: 0,
    };
    shared.report.send_if_modified(|published| {
        let first = published.is_none();
        if first {
            *published = Some(report);
        }
        first
    });
}

/// Converts a wall-clock instant difference into whole microseconds.
pub(crate) fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{ConsoleStyle, StreamKind};

    fn worker(id: u64, name: &str) -> Worker {
        let pipe = |kind| {
            OutputPipe::new(
                kind,
                Stdio::Capture,
                ConsoleStyle { color: false },
                (id, name),
            )
        };
        Worker {
            shared: Arc::new(WorkerShared {
                id,
                name: Arc::from(name),
                report: watch::channel(None).0,
                kill: Notify::new(),
                terminated: AtomicBool::new(false),
                stdout: pipe(StreamKind::Stdout),
                stderr: pipe(StreamKind::Stderr),
            }),
        }
    }

    fn exited(shared: &WorkerShared, code: i32) {
        shared.report.send_replace(Some(WorkerReport {
            status: ExitStatus::Exited { code },
            duration: Duration::ZERO,
            cpu_time: Duration::ZERO,
            peak_memory: 0,
        }));
    }

    #[tokio::test]
    async fn a_panicking_task_is_its_workers_failure_and_its_peer_carries_on() {
        let (broken, peer) = (worker(1, "broken"), worker(2, "peer"));
        let shared = broken.shared.clone();
        let broken_task = tokio::spawn(supervise(broken.shared.clone(), async move {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("the host broke at step {}", 2);
            }
            exited(&shared, 0);
        }));
        let shared = peer.shared.clone();
        let peer_task = tokio::spawn(supervise(peer.shared.clone(), async move {
            tokio::task::yield_now().await;
            exited(&shared, 7);
        }));
        let within = Duration::from_secs(10);
        let status = tokio::time::timeout(within, broken.join()).await.unwrap();
        let ExitStatus::Trapped { message, .. } = &status else {
            panic!("{status:?}");
        };
        assert!(
            message.starts_with("internal error in the host: the host broke at step 2"),
            "{message}"
        );
        assert!(!broken.is_alive());
        let status = tokio::time::timeout(within, peer.join()).await.unwrap();
        assert_eq!(status, ExitStatus::Exited { code: 7 });
        broken_task
            .await
            .expect("the supervisor itself never panics");
        peer_task.await.unwrap();
    }

    #[tokio::test]
    async fn a_report_published_before_a_panic_stands() {
        let w = worker(1, "w");
        let shared = w.shared.clone();
        supervise(w.shared.clone(), async move {
            exited(&shared, 3);
            panic!("after the report");
        })
        .await;
        assert_eq!(w.try_status(), Some(ExitStatus::Exited { code: 3 }));
    }
}
