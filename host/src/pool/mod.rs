//! Pool: N instances of a task component, reused across tasks, like Python's
//! `multiprocessing.Pool`: `map` (ordered), `imap`, `imap_unordered`
//! (streaming, bounded memory), `apply_async`, chunking, `close`, `join`,
//! `terminate`. A task that traps fails that task only: its instance is
//! replaced and the pool goes on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::observe::PoolSnapshot;
use crate::restart::RestartHistory;
use crate::runtime::{Program, Runtime};
use crate::status::Frame;
use crate::worker::WorkerSpec;
use meters::InstanceMeters;
use slot::Slot;

mod meters;
mod slot;

/// How a pool runs its tasks.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// How many instances run tasks at once (default: the number of CPUs).
    pub workers: usize,
    /// Replace an instance after it has run this many tasks (Python's
    /// `maxtasksperchild`): bounds what a leaky task can accumulate.
    pub max_tasks_per_worker: Option<u64>,
    /// A fresh instance for every task: no state survives from one task to
    /// the next. Strongest isolation; costs an instantiation per task.
    pub fresh_instance_per_task: bool,
    /// Fail a task that runs longer than this (its instance is replaced).
    pub task_timeout: Option<Duration>,
    /// Run a task that trapped or timed out again, up to this many times,
    /// on a fresh instance. Tasks that return an error are not retried.
    pub retries: u32,
    /// Give the pool up once more than this many instances were replaced
    /// after a trap, a limit kill or a timeout within `replacements_within`
    /// (OTP's intensity): a task that always traps then fails the pool,
    /// every task after it with [`TaskError::GaveUp`], instead of churning
    /// through instances forever.
    pub max_replacements: u32,
    /// The window of `max_replacements`.
    pub replacements_within: Duration,
    /// The template of every instance: name prefix (instances are
    /// `NAME-1`..`NAME-N`), env, limits, mounts, run, output. A CPU time
    /// limit counts over an instance's life, as a worker's does: past it
    /// the task running fails (`Killed`) and the instance is replaced
    /// (`fresh_instance_per_task` makes it a limit per task).
    pub worker: WorkerSpec,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_tasks_per_worker: None,
            fresh_instance_per_task: false,
            task_timeout: None,
            retries: 0,
            max_replacements: 100,
            replacements_within: Duration::from_secs(60),
            worker: WorkerSpec::new("pool"),
        }
    }
}

/// Why one task failed. The pool and its other tasks go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task returned `err(message)`.
    #[error("{0}")]
    Failed(String),
    /// The task trapped; its instance was replaced.
    #[error("trapped: {message}{}", backtrace.first().map(|f| format!(" (in {f})")).unwrap_or_default())]
    Trapped {
        /// The trap.
        message: String,
        /// Where in the task's wasm, innermost first.
        backtrace: Vec<Frame>,
    },
    /// The task was killed by a limit of its instance (memory, CPU time).
    #[error("killed: {0}")]
    Killed(String),
    /// The task ran past the pool's task timeout.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// No instance could be started to run it.
    #[error("no instance could start: {0}")]
    Start(String),
    /// The pool was terminated before the task finished.
    #[error("the pool was terminated")]
    Terminated,
    /// The pool gave up: too many instances were replaced after failures
    /// (see [`PoolOptions::max_replacements`]).
    #[error("the pool gave up: {0}")]
    GaveUp(String),
    /// The task was submitted after `close`.
    #[error("the pool is closed")]
    Closed,
}

/// The result of one task: its output bytes or why it failed.
pub type TaskResult = Result<Vec<u8>, TaskError>;

/// Why a pool could not be made or joined.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The program does not export the task interface.
    #[error(
        "{0} is not a pool task: it does not export corral:worker/task (build it against the \
         pool-task world)"
    )]
    NotATask(String),
    /// `join` was called on a pool that is neither closed nor terminated.
    #[error("join needs a closed or terminated pool (call close first)")]
    StillOpen,
}

/// Counts of what a pool has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Tasks that returned `ok`.
    pub succeeded: u64,
    /// Tasks that failed, for any reason.
    pub failed: u64,
    /// Instances started (the first N, plus every replacement).
    pub instances_started: u64,
}

/// A chunk of inputs and where its results go.
struct Job {
    inputs: Vec<Vec<u8>>,
    reply: oneshot::Sender<Vec<TaskResult>>,
}

/// Shared by the pool handle, its streams and its instances.
struct Shared {
    runtime: Runtime,
    program: Program,
    options: PoolOptions,
    jobs: async_channel::Sender<Job>,
    queue: async_channel::Receiver<Job>,
    closed: AtomicBool,
    terminate: watch::Sender<bool>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    instances_started: AtomicU64,
    /// The meters of its instances, for snapshots.
    meters: InstanceMeters,
    /// Instances replaced after a failure, against the intensity.
    replacements: Mutex<RestartHistory>,
    /// Why the pool gave up, once it has.
    gave_up: std::sync::OnceLock<String>,
}

impl Shared {
    /// [`Pool::terminate`], also for `corral kill` (through the observatory).
    fn terminate(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.jobs.close();
        self.terminate.send_replace(true);
        while let Ok(job) = self.queue.try_recv() {
            let _ = job
                .reply
                .send(vec![Err(TaskError::Terminated); job.inputs.len()]);
        }
    }
}

/// A pool of task instances. Dropping it without `close` terminates it.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Starts a pool running `program`'s task. Must be called within a Tokio
    /// runtime. Instances start lazily, on their first task.
    pub fn new(
        runtime: &Runtime,
        program: &Program,
        options: PoolOptions,
    ) -> Result<Pool, PoolError> {
        if !program.is_task() {
            return Err(PoolError::NotATask(program.path().display().to_string()));
        }
        let (jobs, queue) = async_channel::unbounded();
        let shared = Arc::new(Shared {
            runtime: runtime.clone(),
            program: program.clone(),
            options: PoolOptions {
                workers: options.workers.max(1),
                ..options
            },
            jobs,
            queue,
            closed: AtomicBool::new(false),
            terminate: watch::channel(false).0,
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            instances_started: AtomicU64::new(0),
            meters: InstanceMeters::default(),
            replacements: Default::default(),
            gave_up: std::sync::OnceLock::new(),
        });
        let (watched, stopped) = (Arc::downgrade(&shared), Arc::downgrade(&shared));
        runtime.observatory().watch_pool(
            move || {
                let shared = watched.upgrade()?;
                let (cpu_ns, memory_bytes, instances_alive) = shared.meters.read();
                Some(PoolSnapshot {
                    name: shared.options.worker.name.clone(),
                    size: shared.options.workers as u64,
                    succeeded: shared.succeeded.load(Ordering::Relaxed),
                    failed: shared.failed.load(Ordering::Relaxed),
                    instances_started: shared.instances_started.load(Ordering::Relaxed),
                    cpu_ns,
                    memory_bytes,
                    instances_alive,
                })
            },
            move || {
                if let Some(shared) = stopped.upgrade() {
                    shared.terminate();
                }
            },
        );
        let workers = (0..shared.options.workers)
            .map(|index| tokio::spawn(Slot::new(shared.clone(), index).serve()))
            .collect();
        Ok(Pool {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// How many instances run tasks at once.
    pub fn size(&self) -> usize {
        self.shared.options.workers
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            succeeded: self.shared.succeeded.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            instances_started: self.shared.instances_started.load(Ordering::Relaxed),
        }
    }

    /// Python's default chunk size for `map` over `len` inputs: about four
    /// chunks per instance.
    pub fn default_chunk(&self, len: usize) -> usize {
        len.div_ceil(self.size() * 4).max(1)
    }

    /// Runs one task. The task is queued at once; the future resolves to its
    /// result (awaiting it is optional for the task to run).
    pub fn apply_async(&self, input: Vec<u8>) -> impl Future<Output = TaskResult> + Send + use<> {
        let pending = self.shared.submit(vec![input]);
        async move { pending.await.pop().unwrap_or(Err(TaskError::Terminated)) }
    }

    /// Runs a task per input with [`default_chunk`](Self::default_chunk)
    /// chunking; results in input order.
    pub async fn map(&self, inputs: Vec<Vec<u8>>) -> Vec<TaskResult> {
        let chunk = self.default_chunk(inputs.len());
        self.map_chunked(inputs, chunk).await
    }

    /// Like [`map`](Self::map) with `chunk` inputs per job: larger chunks
    /// cost fewer round trips (and one guest call when the task exports
    /// `task-batch`).
    pub async fn map_chunked(&self, inputs: Vec<Vec<u8>>, chunk: usize) -> Vec<TaskResult> {
        let n = inputs.len();
        let pending: Vec<_> = Chunks::new(inputs.into_iter(), chunk)
            .map(|(_, c)| self.shared.submit(c))
            .collect();
        let mut results = Vec::with_capacity(n);
        for p in pending {
            results.extend(p.await);
        }
        results
    }

    /// Streams results in input order while inputs are still being read.
    /// At most about `2 × size` chunks are in flight, so memory stays bounded
    /// however long the input.
    pub fn imap<I>(&self, inputs: I, chunk: usize) -> impl Stream<Item = TaskResult> + Send + use<I>
    where
        I: IntoIterator<Item = Vec<u8>>,
        I::IntoIter: Send + 'static,
    {
        self.imap_stream(futures::stream::iter(inputs), chunk)
    }

    /// [`imap`](Self::imap) over an async stream of inputs (input that
    /// arrives over time, such as lines of stdin).
    pub fn imap_stream<S>(
        &self,
        inputs: S,
        chunk: usize,
    ) -> impl Stream<Item = TaskResult> + Send + use<S>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let window = self.size() * 2;
        inputs
            .chunks(chunk.max(1))
            .map(move |c| shared.submit(c))
            .buffered(window)
            .flat_map(futures::stream::iter)
    }

    /// Streams `(input index, result)` as tasks finish, in any order.
    pub fn imap_unordered<I>(
        &self,
        inputs: I,
        chunk: usize,
    ) -> impl Stream<Item = (usize, TaskResult)> + Send + use<I>
    where
        I: IntoIterator<Item = Vec<u8>>,
        I::IntoIter: Send + 'static,
    {
        self.imap_unordered_stream(futures::stream::iter(inputs), chunk)
    }

    /// [`imap_unordered`](Self::imap_unordered) over an async stream of inputs.
    pub fn imap_unordered_stream<S>(
        &self,
        inputs: S,
        chunk: usize,
    ) -> impl Stream<Item = (usize, TaskResult)> + Send + use<S>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let window = self.size() * 2;
        let chunk = chunk.max(1);
        inputs
            .chunks(chunk)
            .enumerate()
            .map(move |(i, c)| {
                let pending = shared.submit(c);
                async move { (i * chunk, pending.await) }
            })
            .buffer_unordered(window)
            .flat_map(|(start, results)| {
                futures::stream::iter(
                    results
                        .into_iter()
                        .enumerate()
                        .map(move |(i, r)| (start + i, r)),
                )
            })
    }

    /// Accepts no more tasks; those already submitted still run. Never blocks.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.jobs.close();
    }

    /// Stops at once: running tasks are abandoned (their instances dropped)
    /// and every unfinished task fails with `Terminated`. Never blocks.
    pub fn terminate(&self) {
        self.shared.terminate();
    }

    /// Whether the pool was terminated (by [`terminate`](Self::terminate)
    /// or `corral kill`): tasks not yet run fail from then on.
    pub fn is_terminated(&self) -> bool {
        *self.shared.terminate.borrow()
    }

    /// Waits until the pool is terminated; never, if it is not. Cancel safe.
    pub async fn terminated(&self) {
        let mut terminated = self.shared.terminate.subscribe();
        let _ = terminated.wait_for(|t| *t).await;
    }

    /// Waits until every instance has exited: after `close`, once all
    /// submitted tasks are done; after `terminate`, at once.
    pub async fn join(&self) -> Result<(), PoolError> {
        if !self.shared.closed.load(Ordering::Relaxed) {
            return Err(PoolError::StillOpen);
        }
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for worker in workers {
            let _ = worker.await;
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.shared.closed.load(Ordering::Relaxed) {
            self.terminate();
        }
    }
}

impl Shared {
    /// Counts an instance replaced after a failure; past the intensity the
    /// pool gives up (every slot sees it before its next task).
    fn replaced_after_failure(&self) {
        let options = &self.options;
        let within = options.replacements_within;
        let mut history = self.replacements.lock().unwrap_or_else(|e| e.into_inner());
        if !history.record(options.max_replacements, within, std::time::Instant::now()) {
            let _ = self.gave_up.set(format!(
                "more than {} task instances replaced after failures within {} \
                 (the last task's own error is above)",
                options.max_replacements,
                humantime::format_duration(within)
            ));
        }
    }

    /// Why the pool gave up, if it has.
    fn given_up(&self) -> Option<TaskError> {
        self.gave_up.get().map(|why| TaskError::GaveUp(why.clone()))
    }

    /// Queues a chunk; the future yields its results (all `Closed` after
    /// `close`, all `Terminated` if the pool stops first).
    fn submit(&self, inputs: Vec<Vec<u8>>) -> impl Future<Output = Vec<TaskResult>> + Send + use<> {
        let n = inputs.len();
        let (reply, results) = oneshot::channel();
        let refused = self.jobs.try_send(Job { inputs, reply }).is_err();
        async move {
            if refused {
                return vec![Err(TaskError::Closed); n];
            }
            results
                .await
                .unwrap_or_else(|_| vec![Err(TaskError::Terminated); n])
        }
    }
}

/// Splits an iterator of inputs into chunks, with each chunk's first index.
struct Chunks<I> {
    inputs: I,
    size: usize,
    next_index: usize,
}

impl<I: Iterator<Item = Vec<u8>>> Chunks<I> {
    fn new(inputs: I, size: usize) -> Self {
        Chunks {
            inputs,
            size: size.max(1),
            next_index: 0,
        }
    }
}

impl<I: Iterator<Item = Vec<u8>>> Iterator for Chunks<I> {
    type Item = (usize, Vec<Vec<u8>>);

    fn next(&mut self) -> Option<Self::Item> {
        let chunk: Vec<Vec<u8>> = self.inputs.by_ref().take(self.size).collect();
        if chunk.is_empty() {
            return None;
        }
        let start = self.next_index;
        self.next_index += chunk.len();
        Some((start, chunk))
    }
}
