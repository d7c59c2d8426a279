//! Starting workers: the task that runs one, enforces its wall-time limit
//! and publishes its report; its store (WASI context, mounts, the
//! bindings' contexts, memory cap and CPU budget); and the children that
//! workers spawn, through the bindings' [`Spawner`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use super::failure::{CpuLimitReached, classify_failure, duration_ms};
use super::program::Program;
use super::variant::VariantKey;
use super::{MemoryLimiter, Runtime, WorkerState, deterministic};
use crate::bindings::filesystem::VfsCtx;
use crate::bindings::process::{Family, Launch, Lineage, Spawner};
use crate::budget::Budget;
use crate::events::Event;
use crate::ledger::{Ledger, LimitHit};
use crate::meter::WorkerMeter;
use crate::observe::Watched;
use crate::output::{OutputPipe, StreamKind};
use crate::policy::network_allows;
use crate::reporter::Reporter;
use crate::restart::{RESTARTS_VAR, Restart, RestartHistory};
use crate::run::Run;
use crate::status::{ExitStatus, KillReason};
use crate::supervisor::Verdict;
use crate::worker::{Metered, Stdin, Worker, WorkerReport, WorkerShared, WorkerSpec};

/// The `exited` event of a worker that ended as `report` says.
fn exited(shared: &WorkerShared, report: &WorkerReport) -> Event {
    Event::Exited {
        id: shared.id,
        name: shared.name.to_string(),
        status: report.status.clone(),
        micros: report.duration.as_micros() as u64,
        cpu_micros: report.cpu_time.as_micros() as u64,
        peak_memory: report.peak_memory,
        restarts: report.restarts,
    }
}

/// How long a worker's end waits for its last lock releases to reach Redis
/// (one round trip each); past it, Redis is taken to be unreachable and
/// the leases expire instead.
const RELEASE_DEADLINE: Duration = Duration::from_secs(5);

impl Runtime {
    /// Starts a worker running `program`'s `main` and returns its handle at
    /// once. Must be called within a Tokio runtime: the worker is a task on it.
    ///
    /// Never fails: a worker that cannot start ends with
    /// [`ExitStatus::FailedToStart`].
    pub fn spawn(&self, program: &Program, spec: WorkerSpec) -> Worker {
        self.spawn_in(program, spec, Lineage::default())
    }

    /// [`spawn`](Self::spawn) for a worker in a family tree (a child).
    fn spawn_in(&self, program: &Program, spec: WorkerSpec, lineage: Lineage) -> Worker {
        let id = self.next_worker_id();
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let console = self.inner.console;
        let (report, _) = watch::channel(None);
        let shared = Arc::new(WorkerShared {
            id,
            name: name.clone(),
            report,
            kill: Notify::new(),
            terminated: AtomicBool::new(false),
            ran_main: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            stdout: OutputPipe::new(StreamKind::Stdout, spec.stdio, console, (id, &name))
                .with_limit(
                    spec.policy.stdout_limit,
                    self.output_cap_notice(id, &name, "stdout"),
                ),
            stderr: OutputPipe::new(StreamKind::Stderr, spec.stdio, console, (id, &name))
                .with_limit(
                    spec.policy.stderr_limit,
                    self.output_cap_notice(id, &name, "stderr"),
                ),
        });
        let worker = Worker {
            shared: shared.clone(),
        };
        let watched =
            self.inner
                .observatory
                .watch(&worker, spec.run.shared_objects(), &spec.policy.name);
        self.emit(Event::Started {
            id,
            name: spec.name.clone(),
        });
        let (runtime, ended) = (self.clone(), shared.clone());
        // Out of tokio's cooperative budget: a guest's whole run is one
        // poll of this task, so after 128 socket or channel readiness checks
        // tokio would answer `not ready` to every later one (wasmtime-wasi
        // checks with a no-op waker, so nothing would even wake it) until
        // the guest blocked. An echo server then saw most of its sockets as
        // unwritable. The epoch yield (`epoch_deadline_callback`) is what
        // keeps a busy worker from holding its thread.
        tokio::spawn(tokio::task::unconstrained(crate::worker::supervise(
            shared.clone(),
            self.clone()
                .run_worker(program.clone(), spec, (shared, watched), lineage),
            move |report| runtime.emit(exited(&ended, report)),
        )));
        worker
    }

    /// Runs the worker's starts, as many as its restart policy wants, then
    /// reports how the last one ended.
    async fn run_worker(
        self,
        program: Program,
        spec: WorkerSpec,
        (shared, watched): (Arc<WorkerShared>, Arc<Watched>),
        lineage: Lineage,
    ) {
        let started = Instant::now();
        let policy = spec.restart;
        let mut history = RestartHistory::default();
        let mut restarts = 0u32;
        // What the latest start used, for a worker that ends between starts.
        let mut used = Arc::new(WorkerMeter::default());
        let (status, meter) = loop {
            let mut this_start = spec.clone();
            if policy.when != Restart::Never || spec.group.is_some() {
                this_start
                    .env
                    .push((RESTARTS_VAR.into(), restarts.to_string()));
            }
            let interrupt = match spec.group.as_ref().map(|m| m.begin_start(policy.when)) {
                Some(Err(status)) => break (status, used),
                Some(Ok(signal)) => Some(signal),
                None => None,
            };
            let (ended, meter) = self
                .clone()
                .run_start(
                    program.clone(),
                    this_start,
                    (shared.clone(), watched.clone()),
                    lineage.clone(),
                    interrupt,
                )
                .await;
            used = meter.clone();
            // A worker asked to stop, or terminated, is not started again.
            let stopping = *shared.shutdown.borrow() || shared.terminated.load(Ordering::Relaxed);
            let wants_restart = ended.as_ref().is_some_and(|s| policy.wants_restart(s));
            let (status, delay) = match &spec.group {
                Some(membership) => {
                    let (verdict, events) = membership.after_start(ended, wants_restart, stopping);
                    events.into_iter().for_each(|event| self.emit(event));
                    match verdict {
                        Verdict::End(status) => break (status, meter),
                        Verdict::Restart { delay, status } => (status, delay),
                    }
                }
                None => {
                    let status = ended.expect("only a supervisor group interrupts a start");
                    if !wants_restart || stopping {
                        break (status, meter);
                    }
                    let Some(delay) = history.next(&policy, Instant::now()) else {
                        self.emit(Event::GaveUp {
                            id: shared.id,
                            name: shared.name.to_string(),
                            restarts,
                            max_restarts: policy.max_restarts,
                            within_ms: duration_ms(Some(policy.within)),
                        });
                        break (status, meter);
                    };
                    (status, delay)
                }
            };
            restarts += 1;
            self.emit(Event::Restarting {
                id: shared.id,
                name: shared.name.to_string(),
                status,
                restart: restarts,
                delay_ms: duration_ms(Some(delay)),
            });
            // No timer for no backoff: Tokio's timer wheel turns every
            // millisecond, which made each restart cost 1.2 ms. Yielding
            // keeps a worker restarted at once (and for ever, if its policy
            // allows) from holding a runtime thread; a terminate is still
            // seen, by the next start's select.
            if delay.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.kill.notified() => {
                    let terminated = ExitStatus::Killed { reason: KillReason::Terminated };
                    break (terminated, meter);
                }
            }
        };
        // Its last start is over: pipe ends kept for a restart close now.
        spec.run.objects().close_pipe_ends_of(&shared.name);
        shared.stdout.finish();
        shared.stderr.finish();
        let report = WorkerReport {
            status,
            duration: started.elapsed(),
            cpu_time: Duration::from_nanos(meter.booked_cpu_ns()),
            peak_memory: meter.peak_memory(),
            restarts,
        };
        self.emit(exited(&shared, &report));
        shared.report.send_replace(Some(report));
    }

    /// One start of a worker: a fresh instance with fresh limits, until it
    /// ends, is killed by a limit or is terminated. Returns how it ended
    /// (`None`: its supervisor group interrupted it) and what it used.
    async fn run_start(
        self,
        program: Program,
        spec: WorkerSpec,
        (shared, watched): (Arc<WorkerShared>, Arc<Watched>),
        lineage: Lineage,
        interrupt: Option<watch::Receiver<u64>>,
    ) -> (Option<ExitStatus>, Arc<WorkerMeter>) {
        let meter = Arc::new(WorkerMeter::default());
        let limits = spec.limits.clone();
        let budget = Budget::new(
            limits.memory,
            (limits.cpu_time, limits.wall_time),
            meter.clone(),
            lineage.parent.clone(),
        );
        // The family's deadline, not this worker's limit from now: a child
        // ends when its parent's time is up, killed for it.
        let wall_deadline = budget.wall_deadline();
        let execution = Metered {
            inner: Box::pin(self.clone().execute(
                program,
                spec,
                (shared.clone(), watched),
                meter.clone(),
                (lineage, budget.clone()),
            )),
            meter: meter.clone(),
            budget: Some(budget),
        };
        let wall_limit = async {
            match wall_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        // Dropping `execution` drops the store and unwinds the worker's
        // fiber, wherever it is: spinning in wasm (it yields at every epoch
        // tick) or suspended in a host call.
        // The wall limit first: a child whose parent was killed at their
        // shared deadline is terminated by it too, and is told why.
        let interrupted = async {
            // A dropped sender (its tree is gone) never interrupts.
            if let Some(mut signal) = interrupt
                && signal.changed().await.is_ok()
            {
                return;
            }
            std::future::pending().await
        };
        let status = tokio::select! {
            biased;
            _ = wall_limit => ExitStatus::Killed {
                reason: KillReason::WallTime { limit_ms: duration_ms(limits.wall_time) },
            },
            _ = shared.kill.notified() => ExitStatus::Killed { reason: KillReason::Terminated },
            () = interrupted => return (None, meter),
            status = execution => status,
        };
        (Some(status), meter)
    }

    async fn execute(
        self,
        program: Program,
        spec: WorkerSpec,
        (shared, watched): (Arc<WorkerShared>, Arc<Watched>),
        meter: Arc<WorkerMeter>,
        family: (Lineage, Arc<Budget>),
    ) -> ExitStatus {
        let Some(command) = &program.0.command else {
            return ExitStatus::FailedToStart {
                reason: format!(
                    "{} has no `main` (it does not export wasi:cli/run); it is a pool task: \
                     run it with `corral pool`",
                    program.path().display()
                ),
            };
        };
        // Fuel and stack sizes are properties of compiled code: such a
        // policy runs on an engine of its own.
        let (engine, command) =
            match VariantKey::for_policy(&spec.policy, self.inner.options.max_wasm_stack) {
                None => (self.inner.engine.clone(), command.clone()),
                Some(key) => match self.program_for(&program, key) {
                    Ok((variant, linked)) => match &linked.command {
                        Some(command) => (variant.engine.clone(), command.clone()),
                        None => unreachable!("a variant of a command is a command"),
                    },
                    Err(reason) => return ExitStatus::FailedToStart { reason },
                },
            };
        let outputs = (shared.stdout.clone(), shared.stderr.clone());
        let mut store = match self.new_store_in(
            &engine,
            &spec,
            shared.id,
            &shared.name,
            outputs,
            &meter,
            family,
        ) {
            Ok(store) => store,
            Err(reason) => return ExitStatus::FailedToStart { reason },
        };
        store.data_mut().process.shutdown = shared.shutdown.subscribe();
        store.data_mut().ipc.activity = watched.activity.clone();
        let vfs = &store.data().vfs;
        watched.started(meter.clone(), vfs.ledger.clone(), vfs.bytes.clone());
        if let Some(fuel) = spec.policy.fuel
            && let Err(e) = store.set_fuel(fuel)
        {
            return ExitStatus::FailedToStart {
                reason: format!("cannot set fuel: {e}"),
            };
        }
        let command = match command.instantiate_async(&mut store).await {
            Ok(command) => command,
            Err(err) => return self.start_failure(err, &spec, &meter),
        };
        shared.ran_main.store(true, Ordering::Release);
        let status = match command.wasi_cli_run().call_run(&mut store).await {
            Ok(Ok(())) => ExitStatus::Exited { code: 0 },
            Ok(Err(())) => ExitStatus::Exited { code: 1 },
            Err(err) => classify_failure(err, &spec, &meter),
        };
        store.data().ipc.releases.settle(RELEASE_DEADLINE).await;
        status
    }

    /// A store for one worker (or pool instance): its WASI context (args,
    /// env, output, no network), mounts, memory cap, and the epoch callback
    /// that enforces its CPU budget and yields at every tick.
    pub(crate) fn new_store(
        &self,
        spec: &WorkerSpec,
        id: u64,
        name: &Arc<str>,
        outputs: (OutputPipe, OutputPipe),
        meter: &Arc<WorkerMeter>,
    ) -> Result<Store<WorkerState>, String> {
        let budget = Budget::new(
            spec.limits.memory,
            (spec.limits.cpu_time, spec.limits.wall_time),
            meter.clone(),
            None,
        );
        self.new_store_in(
            &self.inner.engine,
            spec,
            id,
            name,
            outputs,
            meter,
            (Lineage::default(), budget),
        )
    }

    /// [`new_store`](Self::new_store) for a worker in a family tree, whose
    /// memory and CPU time are charged to `budget`.
    #[allow(clippy::too_many_arguments)]
    fn new_store_in(
        &self,
        engine: &Engine,
        spec: &WorkerSpec,
        id: u64,
        name: &Arc<str>,
        (stdout, stderr): (OutputPipe, OutputPipe),
        meter: &Arc<WorkerMeter>,
        (lineage, budget): (Lineage, Arc<Budget>),
    ) -> Result<Store<WorkerState>, String> {
        let reporter = Reporter::new(id, name.clone(), self.inner.events.clone());
        let policy = &spec.policy;
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(spec.argv0.as_deref().unwrap_or(&spec.name))
            .args(&spec.args)
            .envs(&spec.env)
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(policy.network.any_tcp())
            .allow_udp(!policy.network.udp.is_empty())
            .allow_ip_name_lookup(policy.network.lookup);
        match &spec.stdin {
            Stdin::Empty => {}
            Stdin::Inherit => {
                wasi.stdin(wasmtime_wasi::cli::stdin());
            }
            Stdin::Bytes(bytes) => {
                wasi.stdin(MemoryInputPipe::new(bytes.clone()));
            }
        }
        if policy.network.any_tcp() || !policy.network.udp.is_empty() {
            let network = policy.network.clone();
            let reporter = reporter.clone();
            wasi.socket_addr_check(move |addr, use_| {
                let allowed = network_allows(&network, addr, use_, &reporter);
                Box::pin(async move { allowed })
            });
        }
        if let Some(det) = policy.deterministic {
            deterministic::install(&mut wasi, det);
        }
        // One budget for the worker's linear memory and its private trees;
        // without a cap, the private trees alone get the default quota.
        let private_bytes = Arc::new(crate::vfs::ByteBudget::new(
            spec.limits
                .memory
                .unwrap_or(crate::vfs::Limits::DEFAULT.max_bytes),
        ));
        let ledger = Arc::new(Ledger::new(spec.policy.counts.ledger_limits(), {
            let reporter = reporter.clone();
            move |hit: LimitHit| reporter.deny(hit.kind.rule(), hit.to_string())
        }));
        let mut mounts = crate::vfs::MountTable::new();
        for mount_spec in &spec.mounts {
            let mount = mount_spec
                .open(spec.run.fs(), &private_bytes)?
                .charged_to(&ledger)
                .map_err(|e| format!("cannot mount {}: {e}", mount_spec.guest_path))?;
            mounts
                .add(&mount_spec.guest_path, mount)
                .map_err(|e| format!("cannot mount at {}: {e}", mount_spec.guest_path))?;
        }
        let family = (!spec.policy.spawn.components.is_empty()).then(|| Family {
            spawner: Arc::new(self.clone()),
            // Children read no stdin: the host's stays with the worker it
            // was given to.
            spec: Arc::new(WorkerSpec {
                stdin: Stdin::Empty,
                ..spec.clone()
            }),
            lineage,
            budget: budget.clone(),
            children: Vec::new(),
        });
        let limiter = MemoryLimiter {
            private: spec.limits.memory.map(|_| private_bytes.clone()),
            pending: 0,
            counts: spec.policy.counts,
            meter: meter.clone(),
            budget: budget.clone(),
            charged: 0,
            reporter: Some(reporter.clone()),
        };
        let state = WorkerState::new(
            reporter,
            spec.policy.clone(),
            spec.run.shared_objects(),
            family,
            VfsCtx {
                mounts,
                ledger,
                bytes: private_bytes,
            },
            wasi.build(),
            limiter,
        );
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        let cpu_meter = meter.clone();
        store.epoch_deadline_callback(move |_| {
            // The worker's own budget, or an ancestor's that its family spent.
            if budget.cpu_spent(cpu_meter.cpu_ns()) {
                return Err(wasmtime::Error::new(CpuLimitReached));
            }
            // Yielding at every tick lets thousands of busy workers share the
            // executor's threads and lets `terminate` take effect.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }

    /// What to do when a worker's output passes its cap: a denial event.
    fn output_cap_notice(
        &self,
        id: u64,
        name: &Arc<str>,
        stream: &'static str,
    ) -> impl FnOnce(u64) + Send + 'static {
        let reporter = Reporter::new(id, name.clone(), self.inner.events.clone());
        move |limit| {
            let limit = bytesize::ByteSize(limit).display().iec();
            reporter.deny(
                &format!("output.{stream}"),
                format!("writing past {limit} of {stream}"),
            );
        }
    }
}

impl Spawner for Runtime {
    fn find(&self, run: &Run, component: &str) -> Option<Launch> {
        let program = run.component(component)?;
        let runtime = self.clone();
        Some(Box::new(move |spec, lineage| {
            runtime.spawn_in(&program, spec, lineage)
        }))
    }
}
