//! Workers: spawn a component as a sandboxed worker, then join, terminate or
//! poll it. One worker's failure never reaches the host or its peers.
//!
//! The runtime drives workers, so this module never imports it: what both
//! need lives in the leaves `status`, `meter` and `policy`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::budget::Budget;
use crate::meter::WorkerMeter;
use crate::output::{OutputPipe, Stdio};
use crate::policy::{Limits, Policy, Profile};
use crate::restart::RestartPolicy;
use crate::run::Run;
use crate::status::ExitStatus;
use crate::supervisor::Membership;
use crate::vfs::MountSpec;

/// Everything needed to start one worker from a [`Program`](crate::Program).
#[derive(Debug, Clone, Default)]
pub struct WorkerSpec {
    /// The worker's name: its `[name]` output prefix, `argv[0]` unless
    /// [`argv0`](Self::argv0) says otherwise, and what
    /// `corral:worker/process.name` returns.
    pub name: String,
    /// `argv[0]` when it is not the name: `corral run FILE` passes FILE's
    /// file name, as `wasmtime run` does, so programs that print their own
    /// name in usage messages print the same under both.
    pub argv0: Option<String>,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The worker's entire environment. Nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub limits: Limits,
    /// Where stdout and stderr go.
    pub stdio: Stdio,
    /// What the worker reads on stdin.
    pub stdin: Stdin,
    /// The run whose named objects and file tree the worker may use.
    /// Workers that do not share a run share nothing.
    pub run: Run,
    /// What the worker sees through `wasi:filesystem`, one preopen each.
    /// Empty (the default): no filesystem at all.
    pub mounts: Vec<MountSpec>,
    /// What else it may reach (network, IPC, spawning, output caps...).
    pub policy: Arc<Policy>,
    /// When the worker is started again after it ends, and when it is
    /// given up. Each start is a fresh instance with fresh limits, told
    /// its restart count in `CORRAL_RESTARTS`.
    pub restart: RestartPolicy,
    /// Its supervisor group, if any: then the group, not the policy's own
    /// intensity, decides its restarts, and a member's failure may restart
    /// its siblings (see [`crate::supervisor`]).
    pub group: Option<Membership>,
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

    /// Sets what the worker reads on stdin.
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
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

    /// Sets the restart policy.
    pub fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    /// Makes the worker a member of a supervisor group.
    pub fn member_of(mut self, membership: Membership) -> Self {
        self.group = Some(membership);
        self
    }
}

/// What a worker reads on stdin.
#[derive(Debug, Clone, Default)]
pub enum Stdin {
    /// Nothing: the first read finds the end of input.
    #[default]
    Empty,
    /// The host process's own stdin, read only as the worker asks for it.
    /// Give it to one worker: workers that share it race for its bytes.
    Inherit,
    /// These bytes, then the end of input.
    Bytes(bytes::Bytes),
}

// Here rather than in `policy/`: the policy module sits below the worker and
// never sees a `WorkerSpec`.
impl Profile {
    /// Puts the profile into `spec`: limits, environment (names copied from
    /// the host when it has them), mounts, and the run-time policy. Values
    /// the spec already has (from the command line) win over the profile's.
    pub fn apply_to(&self, spec: &mut WorkerSpec) {
        let limits = &mut spec.limits;
        limits.memory = limits.memory.or(self.limits.memory);
        limits.cpu_time = limits.cpu_time.or(self.limits.cpu_time);
        limits.wall_time = limits.wall_time.or(self.limits.wall_time);
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter_map(|entry| match entry.split_once('=') {
                Some((k, v)) => Some((k.to_string(), v.to_string())),
                None => std::env::var(entry).ok().map(|v| (entry.clone(), v)),
            })
            .collect();
        env.retain(|(k, _)| !spec.env.iter().any(|(sk, _)| sk == k));
        spec.env.extend(env);
        let mut mounts = self.mounts.clone();
        mounts.retain(|m| !spec.mounts.iter().any(|s| s.guest_path == m.guest_path));
        spec.mounts.extend(mounts);
        spec.policy = std::sync::Arc::new(self.policy.clone());
    }
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
    /// How often it was restarted (see [`WorkerSpec::restart`]); the
    /// other fields are of its last start.
    pub restarts: u32,
}

/// Shared between a worker's task and its handles.
pub(crate) struct WorkerShared {
    pub id: u64,
    pub name: Arc<str>,
    pub report: watch::Sender<Option<WorkerReport>>,
    pub kill: Notify,
    pub terminated: AtomicBool,
    /// Set once the worker is instantiated and its `main` called.
    pub ran_main: AtomicBool,
    /// Set when the host asks the worker to stop (see
    /// [`Worker::request_shutdown`]); what `shutdown-requested` waits for.
    pub shutdown: watch::Sender<bool>,
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

    /// Whether the worker got as far as its `main`: one that ended before
    /// (it failed to start, or a limit refused its instantiation) never
    /// read or wrote anything.
    pub fn ran_main(&self) -> bool {
        self.shared.ran_main.load(Ordering::Acquire)
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

    /// Asks the worker to finish up: its `shutdown-requested` pollable
    /// becomes ready, and it is not restarted after it ends. Returns at
    /// once; the worker decides when to exit.
    pub fn request_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Stops the worker gracefully: asks it to finish up, waits up to
    /// `grace` for it to end, then terminates it. Resolves to how it ended.
    ///
    /// Cancel safety: dropping the future after the request leaves the
    /// worker asked to stop but not terminated.
    pub async fn shutdown(&self, grace: Duration) -> ExitStatus {
        self.request_shutdown();
        if let Ok(status) = tokio::time::timeout(grace, self.join()).await {
            return status;
        }
        self.terminate();
        self.join().await
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
/// worker's wasm (and the synchronous host code it calls) occupied a thread,
/// to its meter and to its ancestors' budgets (a pool's instances have none).
pub(crate) struct Metered<F> {
    pub inner: Pin<Box<F>>,
    pub meter: Arc<WorkerMeter>,
    pub budget: Option<Arc<Budget>>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.poll_started();
        let result = self.inner.as_mut().poll(cx);
        let spent = self.meter.poll_ended();
        if let Some(budget) = &self.budget {
            budget.book_cpu(spent);
        }
        result
    }
}

/// Runs a worker's task to its end. A panic in the host while it runs
/// (a bug) becomes that worker's failure, reported like any other ending
/// (`ended` is told, to send its `exited` event), so whoever joins it is
/// answered and its peers and the run carry on.
pub(crate) async fn supervise(
    shared: Arc<WorkerShared>,
    task: impl Future<Output = ()>,
    ended: impl FnOnce(&WorkerReport),
) {
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
        restarts: 0,
    };
    shared.report.send_if_modified(|published| {
        let first = published.is_none();
        if first {
            ended(&report);
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
    use std::path::Path;

    use super::*;
    use crate::output::{ConsoleStyle, StreamKind};
    use crate::policy::PolicyFile;

    #[test]
    fn applying_keeps_command_line_values() {
        let text = "[profiles.base]\nmemory = \"64MiB\"\ncpu = \"2s\"\nenv = [\"LANG=C\"]\n";
        let profile = PolicyFile::parse(Path::new("dir/policy.toml"), text)
            .unwrap()
            .profile(Some("base"))
            .unwrap();
        let mut spec = WorkerSpec::new("w").env("LANG", "fr_FR");
        spec.limits.memory = Some(1 << 20);
        profile.apply_to(&mut spec);
        assert_eq!(spec.limits.memory, Some(1 << 20));
        assert_eq!(spec.limits.cpu_time, Some(Duration::from_secs(2)));
        assert_eq!(spec.env, [("LANG".to_string(), "fr_FR".to_string())]);
        assert_eq!(spec.policy.name, "base");
    }

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
                ran_main: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
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
            restarts: 0,
        }));
    }

    #[tokio::test]
    async fn a_panicking_task_is_its_workers_failure_and_its_peer_carries_on() {
        let (broken, peer) = (worker(1, "broken"), worker(2, "peer"));
        let shared = broken.shared.clone();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tell = |told: &Arc<std::sync::Mutex<Vec<ExitStatus>>>| {
            let told = told.clone();
            move |report: &WorkerReport| told.lock().unwrap().push(report.status.clone())
        };
        let broken_task = tokio::spawn(supervise(
            broken.shared.clone(),
            async move {
                tokio::task::yield_now().await;
                if std::hint::black_box(true) {
                    panic!("the host broke at step {}", 2);
                }
                exited(&shared, 0);
            },
            tell(&told),
        ));
        let shared = peer.shared.clone();
        let peer_task = tokio::spawn(supervise(
            peer.shared.clone(),
            async move {
                tokio::task::yield_now().await;
                exited(&shared, 7);
            },
            tell(&told),
        ));
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
        // Only the panic is told by the supervisor: a task that ends sends
        // its own exited event.
        let told = told.lock().unwrap();
        assert!(
            matches!(told.as_slice(), [ExitStatus::Trapped { .. }]),
            "{told:?}"
        );
    }

    #[tokio::test]
    async fn a_report_published_before_a_panic_stands() {
        let w = worker(1, "w");
        let shared = w.shared.clone();
        supervise(
            w.shared.clone(),
            async move {
                exited(&shared, 3);
                panic!("after the report");
            },
            |report| panic!("told of {report:?}, reported before the panic"),
        )
        .await;
        assert_eq!(w.try_status(), Some(ExitStatus::Exited { code: 3 }));
    }
}
