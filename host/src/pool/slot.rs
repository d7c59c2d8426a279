//! One of a pool's N places to run tasks: the task instance it holds, how
//! a chunk of inputs runs on it, and how it is replaced after a trap.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::Unconstrained;
use wasmtime::Store;
use wasmtime::component::TypedFunc;

use super::{Shared, TaskError, TaskResult};
use crate::bindings::corral_worker::types::Batch;
use crate::meter::WorkerMeter;
use crate::output::{OutputPipe, StreamKind};
use crate::runtime::{WorkerState, classify_failure};
use crate::status::ExitStatus;
use crate::worker::{Metered, WorkerSpec};

type HandleFunc = TypedFunc<(Vec<u8>,), (Result<Vec<u8>, String>,)>;
type BatchFunc = TypedFunc<(Batch,), (Vec<Result<Vec<u8>, String>>,)>;

/// A live instance of the task component.
struct Instance {
    store: Store<WorkerState>,
    handle: HandleFunc,
    batch: Option<BatchFunc>,
    meter: Arc<WorkerMeter>,
    tasks: u64,
}

/// One of the pool's N places to run tasks, with the instance it holds.
pub(super) struct Slot {
    shared: Arc<Shared>,
    spec: WorkerSpec,
    outputs: (OutputPipe, OutputPipe),
    instance: Option<Instance>,
}

impl Slot {
    pub(super) fn new(shared: Arc<Shared>, index: usize) -> Slot {
        let template = &shared.options.worker;
        let spec = WorkerSpec {
            name: format!("{}-{}", template.name, index + 1),
            ..template.clone()
        };
        let console = shared.runtime.console();
        let id = shared.runtime.next_worker_id();
        let outputs = (
            OutputPipe::new(StreamKind::Stdout, spec.stdio, console, (id, &spec.name)),
            OutputPipe::new(StreamKind::Stderr, spec.stdio, console, (id, &spec.name)),
        );
        Slot {
            shared,
            spec,
            outputs,
            instance: None,
        }
    }

    /// Takes jobs until the pool closes or terminates.
    pub(super) async fn serve(mut self) {
        let mut terminated = self.shared.terminate.subscribe();
        loop {
            let job = tokio::select! {
                biased;
                _ = terminated.wait_for(|t| *t) => break,
                job = self.shared.queue.recv() => match job {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            let n = job.inputs.len();
            let results = tokio::select! {
                biased;
                _ = terminated.wait_for(|t| *t) => {
                    self.instance = None;
                    let _ = job.reply.send(vec![Err(TaskError::Terminated); n]);
                    break;
                }
                results = self.run_job(job.inputs) => results,
            };
            let failed = results.iter().filter(|r| r.is_err()).count() as u64;
            self.shared.failed.fetch_add(failed, Ordering::Relaxed);
            self.shared
                .succeeded
                .fetch_add(n as u64 - failed, Ordering::Relaxed);
            let _ = job.reply.send(results);
        }
        self.outputs.0.finish();
        self.outputs.1.finish();
    }

    /// Runs a chunk: in one guest call if the task takes batches and the
    /// instance may run them all, else one call per input.
    async fn run_job(&mut self, inputs: Vec<Vec<u8>>) -> Vec<TaskResult> {
        let options = &self.shared.options;
        let may_batch = inputs.len() > 1
            && !options.fresh_instance_per_task
            && options.max_tasks_per_worker.is_none();
        if let Some(gave_up) = self.shared.given_up() {
            return inputs.iter().map(|_| Err(gave_up.clone())).collect();
        }
        if may_batch && let Some(results) = self.try_batch(&inputs).await {
            return results;
        }
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            results.push(self.run_one(input).await);
        }
        results
    }

    /// The batch path. `None` when the task has no batch export or the batch
    /// failed as a whole (a trap): then each input runs on its own, so only
    /// the guilty one fails.
    async fn try_batch(&mut self, inputs: &[Vec<u8>]) -> Option<Vec<TaskResult>> {
        let timeout = self.shared.options.task_timeout;
        let instance = self.instance().await.ok()?;
        let batch_fn = instance.batch?;
        let batch = Batch {
            lengths: inputs.iter().map(|i| i.len() as u32).collect(),
            data: inputs.concat(),
        };
        let call = metered(
            &instance.meter,
            batch_fn.call_async(&mut instance.store, (batch,)),
        );
        let outcome = match timeout {
            // The whole chunk gets the time its tasks would have had.
            Some(limit) => tokio::time::timeout(limit * inputs.len() as u32, call)
                .await
                .ok(),
            None => Some(call.await),
        };
        match outcome {
            Some(Ok((results,))) if results.len() == inputs.len() => {
                instance.tasks += inputs.len() as u64;
                Some(
                    results
                        .into_iter()
                        .map(|r| r.map_err(TaskError::Failed))
                        .collect(),
                )
            }
            _ => {
                self.instance = None;
                self.shared.replaced_after_failure();
                None
            }
        }
    }

    async fn run_one(&mut self, mut input: Vec<u8>) -> TaskResult {
        let attempts = self.shared.options.retries + 1;
        let timeout = self.shared.options.task_timeout;
        let mut last = TaskError::Terminated;
        for attempt in 1..=attempts {
            if let Some(gave_up) = self.shared.given_up() {
                return Err(gave_up);
            }
            let instance = match self.instance().await {
                Ok(instance) => instance,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            // Only a retry needs the input again.
            let arg = if attempt == attempts {
                std::mem::take(&mut input)
            } else {
                input.clone()
            };
            let call = metered(
                &instance.meter,
                instance.handle.call_async(&mut instance.store, (arg,)),
            );
            let outcome = match timeout {
                Some(limit) => tokio::time::timeout(limit, call)
                    .await
                    .map_err(|_| TaskError::Timeout(limit)),
                None => Ok(call.await),
            };
            match outcome {
                Ok(Ok((result,))) => {
                    self.task_finished();
                    return result.map_err(TaskError::Failed);
                }
                Ok(Err(err)) => {
                    let meter = instance.meter.clone();
                    self.instance = None;
                    self.shared.replaced_after_failure();
                    last = task_failure(classify_failure(err, &self.spec, &meter));
                }
                Err(timed_out) => {
                    self.instance = None;
                    self.shared.replaced_after_failure();
                    last = timed_out;
                }
            }
        }
        Err(last)
    }

    /// Counts a finished task and retires the instance when the options say.
    fn task_finished(&mut self) {
        let options = &self.shared.options;
        let Some(instance) = &mut self.instance else {
            return;
        };
        instance.tasks += 1;
        let worn_out = options
            .max_tasks_per_worker
            .is_some_and(|max| instance.tasks >= max);
        if options.fresh_instance_per_task || worn_out {
            self.instance = None;
        }
    }

    /// The live instance, started if there is none.
    async fn instance(&mut self) -> Result<&mut Instance, TaskError> {
        if self.instance.is_none() {
            self.instance = Some(start(&self.shared, &self.spec, self.outputs.clone()).await?);
        }
        Ok(self.instance.as_mut().expect("just started"))
    }
}

/// A guest call whose CPU time is booked to its instance's meter, so that
/// the instance's CPU limit applies and snapshots see the time. Out of
/// tokio's cooperative budget, as a worker's run is (`Runtime::spawn` says
/// why): the epoch yield bounds how long it holds the thread.
fn metered<F: Future>(meter: &Arc<WorkerMeter>, call: F) -> Metered<Unconstrained<F>> {
    Metered {
        inner: Box::pin(tokio::task::unconstrained(call)),
        meter: meter.clone(),
        budget: None,
    }
}

/// Starts an instance of the pool's task for the slot `spec` describes.
async fn start(
    shared: &Shared,
    spec: &WorkerSpec,
    outputs: (OutputPipe, OutputPipe),
) -> Result<Instance, TaskError> {
    let meter = Arc::new(WorkerMeter::default());
    let id = shared.runtime.next_worker_id();
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let mut store = shared
        .runtime
        .new_store(spec, id, &name, outputs, &meter)
        .map_err(TaskError::Start)?;
    let exports = shared.program.task_exports().expect("checked in Pool::new");
    let instance = shared
        .program
        .instance_pre()
        .instantiate_async(&mut store)
        .await
        .map_err(|e| TaskError::Start(format!("{e:#}")))?;
    let handle = instance
        .get_typed_func(&mut store, exports.handle)
        .map_err(|e| TaskError::Start(format!("task `handle` has an unexpected type: {e:#}")))?;
    let batch = match exports.handle_batch {
        Some(index) => Some(instance.get_typed_func(&mut store, index).map_err(|e| {
            TaskError::Start(format!("`handle-batch` has an unexpected type: {e:#}"))
        })?),
        None => None,
    };
    shared.instances_started.fetch_add(1, Ordering::Relaxed);
    shared.meters.watch(meter.clone());
    Ok(Instance {
        store,
        handle,
        batch,
        meter,
        tasks: 0,
    })
}

/// A task's failure, from how its instance would have ended as a worker.
fn task_failure(status: ExitStatus) -> TaskError {
    match status {
        ExitStatus::Trapped { message, backtrace } => TaskError::Trapped { message, backtrace },
        ExitStatus::Killed { reason } => TaskError::Killed(reason.to_string()),
        other => TaskError::Killed(other.summary()),
    }
}
