//! The host runtime: one engine, one linker, the compile cache and the epoch
//! ticker, shared by every worker of a host.

mod cache;
mod deterministic;
mod engine;
mod load;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;

pub use cache::CompileCache;
pub use engine::EngineOptions;
pub(crate) use state::{Family, Lineage, MemoryLimiter, Reporter, WorkerState};

use crate::error::{LoadError, RuntimeError};
use crate::events::{Event, EventSink};
use crate::meter::WorkerMeter;
use crate::output::{ConsoleStyle, OutputPipe, StreamKind};
use crate::status::{CacheOutcome, ExitStatus, Frame, InputKind, KillReason};
use crate::worker::{Metered, Worker, WorkerReport, WorkerShared, WorkerSpec, micros};

/// How to set up a [`Runtime`].
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Engine sizing (pool slots, memory reservation, epoch tick).
    pub engine: EngineOptions,
    /// Where compiled components are cached; `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
    /// How console output of workers is decorated.
    pub console: ConsoleStyle,
    /// Receives lifecycle events, if set.
    pub events: Option<Arc<dyn EventSink>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            engine: EngineOptions::default(),
            cache_dir: CompileCache::default_dir(),
            console: ConsoleStyle { color: false },
            events: None,
        }
    }
}

/// The host: loads programs and spawns workers from them. Cheap to clone.
///
/// Create one per process; workers of one runtime share its engine, its
/// compile cache and its pool of instance slots.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<WorkerState>,
    cache: Option<CompileCache>,
    console: ConsoleStyle,
    events: Option<Arc<dyn EventSink>>,
    next_id: AtomicU64,
    max_workers: u32,
    ticker_stop: Arc<AtomicBool>,
    /// How the engines were configured, for variant engines.
    options: EngineOptions,
    /// Every engine whose epoch the ticker advances.
    ticked: Arc<Mutex<Vec<Engine>>>,
    variants: Mutex<HashMap<VariantKey, Arc<Variant>>>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        // The ticker thread would hold the engines until its next tick: let
        // them go now, so that the pool's address space is free for a
        // runtime built right after this one.
        self.ticked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = engine::build_engine(&config.engine)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        crate::bindings::add_to_linker(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = match config.cache_dir {
            Some(dir) => Some(
                CompileCache::open(&dir).map_err(|source| RuntimeError::Cache { dir, source })?,
            ),
            None => None,
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticked = Arc::new(Mutex::new(vec![engine.clone()]));
        spawn_epoch_ticker(
            ticked.clone(),
            config.engine.epoch_tick,
            ticker_stop.clone(),
        );
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                console: config.console,
                events: config.events,
                next_id: AtomicU64::new(1),
                max_workers: config.engine.max_workers,
                ticker_stop,
                options: config.engine.clone(),
                ticked,
                variants: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The engine every worker of this runtime runs on.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The compile cache, if enabled.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.inner.cache.as_ref()
    }

    fn emit(&self, event: Event) {
        if let Some(sink) = &self.inner.events {
            sink.event(&event);
        }
    }

    /// Loads a worker program from a file: a component, a WASI preview1
    /// core module (adapted in-process) or WebAssembly text.
    ///
    /// Blocks the calling thread while compiling (~100 ms for a small
    /// component, seconds for a large one) unless the compile cache has it.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Program, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, bytes)
    }

    /// Like [`load`](Self::load), from bytes already in memory; `path` is only
    /// used in messages.
    pub fn load_bytes(&self, path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Program, LoadError> {
        let path = path.as_ref();
        let started = Instant::now();
        let compiled = self.compile(path, bytes)?;
        let engine = &self.inner.engine;
        let missing = load::missing_imports(engine, &compiled.component);
        if !missing.is_empty() {
            return Err(LoadError::MissingImports {
                path: path.to_owned(),
                imports: missing,
            });
        }
        let run_export = load::find_run_export(engine, &compiled.component);
        let task = load::find_task_exports(engine, &compiled.component);
        if run_export.is_none() && task.is_none() {
            let exports = compiled
                .component
                .component_type()
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect();
            return Err(LoadError::NoEntryPoint {
                path: path.to_owned(),
                exports,
            });
        }
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(link_error)?;
        let command = match run_export {
            Some(_) => Some(CommandPre::new(pre.clone()).map_err(link_error)?),
            None => None,
        };
        self.emit(Event::Loaded {
            path: path.display().to_string(),
            kind: compiled.kind,
            cache: compiled.cache,
            micros: micros(started),
        });
        Ok(Program(Arc::new(ProgramInner {
            path: path.to_owned(),
            kind: compiled.kind,
            cache: compiled.cache,
            input: compiled.input,
            pre,
            command,
            task,
            variants: Mutex::new(HashMap::new()),
        })))
    }

    /// Describes a file without requiring that it can run here: its kind,
    /// imports (and whether this host provides each), and exports.
    pub fn inspect(&self, path: impl AsRef<Path>) -> Result<Inspection, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let compiled = self.compile(path, bytes)?;
        let engine = &self.inner.engine;
        let ty = compiled.component.component_type();
        let missing = load::missing_imports(engine, &compiled.component);
        let imports = load::describe_items(ty.imports(engine))
            .into_iter()
            .map(|(name, kind)| InspectedItem {
                provided: !missing.contains(&name),
                name,
                kind,
            })
            .collect();
        let exports = load::describe_items(ty.exports(engine))
            .into_iter()
            .map(|(name, kind)| InspectedItem {
                name,
                kind,
                provided: true,
            })
            .collect();
        let link_problem = if missing.is_empty() {
            self.inner
                .linker
                .instantiate_pre(&compiled.component)
                .err()
                .map(|e| format!("{e:#}"))
        } else {
            None
        };
        Ok(Inspection {
            kind: compiled.kind,
            run_export: load::find_run_export(engine, &compiled.component),
            imports,
            exports,
            link_problem,
            cache: compiled.cache,
        })
    }

    /// Compiles (or loads from cache) and stores the result, so later runs
    /// start without compiling. Returns whether the cache already had it.
    pub fn precompile(&self, path: impl AsRef<Path>) -> Result<CacheOutcome, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(self.compile(path, bytes)?.cache)
    }

    fn compile(&self, path: &Path, bytes: Vec<u8>) -> Result<Compiled, LoadError> {
        let input = Arc::new(load::recognise(path, bytes)?);
        let (component, cache) = self.compile_for(&self.inner.engine, path, &input)?;
        Ok(Compiled {
            kind: input.kind,
            component,
            cache,
            input,
        })
    }

    /// Compiles `input` for `engine`, or maps it from the compile cache.
    fn compile_for(
        &self,
        engine: &Engine,
        path: &Path,
        input: &load::Recognised,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        let entry = self.inner.cache.as_ref().map(|cache| {
            (
                cache,
                cache.entry_path(engine, &input.original, input.cache_flavor()),
            )
        });
        if let Some((cache, entry)) = &entry
            && let Some(component) = cache.load(engine, entry)
        {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = load::compile(engine, path, &input.component_bytes(path)?)?;
        let outcome = match &entry {
            Some((cache, entry)) => {
                cache.store(&component, entry);
                CacheOutcome::Miss
            }
            None => CacheOutcome::Disabled,
        };
        Ok((component, outcome))
    }

    /// The engine (and linker) for workers whose policy asks for fuel or a
    /// stack size of their own, made on first use.
    fn variant(&self, key: VariantKey) -> Result<Arc<Variant>, String> {
        let mut variants = self
            .inner
            .variants
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(variant) = variants.get(&key) {
            return Ok(variant.clone());
        }
        let engine = engine::build_variant_engine(&self.inner.options, key.fuel, key.stack)
            .map_err(|e| format!("cannot configure an engine for this policy: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        crate::bindings::add_to_linker(&mut linker).map_err(|e| format!("{e:#}"))?;
        self.inner
            .ticked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(engine.clone());
        let variant = Arc::new(Variant { engine, linker });
        variants.insert(key, variant.clone());
        Ok(variant)
    }

    /// `program` compiled and linked for a variant engine, made on first use.
    fn program_for(
        &self,
        program: &Program,
        key: VariantKey,
    ) -> Result<(Arc<Variant>, Arc<VariantProgram>), String> {
        let variant = self.variant(key)?;
        let mut compiled = program.0.variants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(linked) = compiled.get(&key) {
            return Ok((variant, linked.clone()));
        }
        let (component, _) = self
            .compile_for(&variant.engine, &program.0.path, &program.0.input)
            .map_err(|e| e.to_string())?;
        let pre = variant
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("{e:#}"))?;
        let command = match program.0.command {
            Some(_) => Some(CommandPre::new(pre).map_err(|e| format!("{e:#}"))?),
            None => None,
        };
        let linked = Arc::new(VariantProgram { command });
        compiled.insert(key, linked.clone());
        Ok((variant, linked))
    }

    /// Starts a worker running `program`'s `main` and returns its handle at
    /// once. Must be called within a Tokio runtime: the worker is a task on it.
    ///
    /// Never fails: a worker that cannot start ends with
    /// [`ExitStatus::FailedToStart`].
    pub fn spawn(&self, program: &Program, spec: WorkerSpec) -> Worker {
        self.spawn_in(program, spec, Lineage::default())
    }

    /// [`spawn`](Self::spawn) for a worker in a family tree (a child).
    pub(crate) fn spawn_in(&self, program: &Program, spec: WorkerSpec, lineage: Lineage) -> Worker {
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
        self.emit(Event::Started {
            id,
            name: spec.name.clone(),
        });
        tokio::spawn(crate::worker::supervise(
            shared.clone(),
            self.clone()
                .run_worker(program.clone(), spec, shared.clone(), lineage),
        ));
        Worker { shared }
    }

    async fn run_worker(
        self,
        program: Program,
        spec: WorkerSpec,
        shared: Arc<WorkerShared>,
        lineage: Lineage,
    ) {
        let started = Instant::now();
        let meter = Arc::new(WorkerMeter::default());
        let limits = spec.limits.clone();
        let execution = Metered {
            inner: Box::pin(self.clone().execute(
                program,
                spec,
                shared.clone(),
                meter.clone(),
                lineage,
            )),
            meter: meter.clone(),
        };
        let wall_limit = async {
            match limits.wall_time {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        // Dropping `execution` drops the store and unwinds the worker's
        // fiber, wherever it is: spinning in wasm (it yields at every epoch
        // tick) or suspended in a host call.
        let status = tokio::select! {
            biased;
            _ = shared.kill.notified() => ExitStatus::Killed { reason: KillReason::Terminated },
            _ = wall_limit => ExitStatus::Killed {
                reason: KillReason::WallTime { limit_ms: duration_ms(limits.wall_time) },
            },
            status = execution => status,
        };
        shared.stdout.finish();
        shared.stderr.finish();
        let report = WorkerReport {
            status,
            duration: started.elapsed(),
            cpu_time: Duration::from_nanos(meter.booked_cpu_ns()),
            peak_memory: meter.peak_memory(),
        };
        self.emit(Event::Exited {
            id: shared.id,
            name: shared.name.to_string(),
            status: report.status.clone(),
            micros: report.duration.as_micros() as u64,
            cpu_micros: report.cpu_time.as_micros() as u64,
            peak_memory: report.peak_memory,
        });
        shared.report.send_replace(Some(report));
    }

    async fn execute(
        self,
        program: Program,
        spec: WorkerSpec,
        shared: Arc<WorkerShared>,
        meter: Arc<WorkerMeter>,
        lineage: Lineage,
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
            lineage,
        ) {
            Ok(store) => store,
            Err(reason) => return ExitStatus::FailedToStart { reason },
        };
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
        match command.wasi_cli_run().call_run(&mut store).await {
            Ok(Ok(())) => ExitStatus::Exited { code: 0 },
            Ok(Err(())) => ExitStatus::Exited { code: 1 },
            Err(err) => classify_failure(err, &spec, &meter),
        }
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
        self.new_store_in(
            &self.inner.engine,
            spec,
            id,
            name,
            outputs,
            meter,
            Lineage::default(),
        )
    }

    /// [`new_store`](Self::new_store) for a worker in a family tree.
    #[allow(clippy::too_many_arguments)]
    fn new_store_in(
        &self,
        engine: &Engine,
        spec: &WorkerSpec,
        id: u64,
        name: &Arc<str>,
        (stdout, stderr): (OutputPipe, OutputPipe),
        meter: &Arc<WorkerMeter>,
        lineage: Lineage,
    ) -> Result<Store<WorkerState>, String> {
        let reporter = Reporter {
            id,
            name: name.clone(),
            sink: self.inner.events.clone(),
        };
        let policy = &spec.policy;
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&spec.name)
            .args(&spec.args)
            .envs(&spec.env)
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(policy.network.any_tcp())
            .allow_udp(!policy.network.udp.is_empty())
            .allow_ip_name_lookup(policy.network.lookup);
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
        let mut mounts = crate::vfs::MountTable::new();
        for mount_spec in &spec.mounts {
            let mount = mount_spec.open(spec.run.fs())?;
            mounts
                .add(&mount_spec.guest_path, mount)
                .map_err(|e| format!("cannot mount at {}: {e}", mount_spec.guest_path))?;
        }
        let state = WorkerState {
            id,
            name: name.clone(),
            policy: spec.policy.clone(),
            reporter: reporter.clone(),
            family: (!spec.policy.spawn.components.is_empty()).then(|| Family {
                runtime: self.clone(),
                spec: Arc::new(spec.clone()),
                lineage,
                children: Vec::new(),
            }),
            run: spec.run.clone(),
            vfs: crate::bindings::filesystem::VfsCtx { mounts },
            wasi: wasi.build(),
            table: Default::default(),
            limiter: MemoryLimiter {
                cap: spec.limits.memory,
                counts: spec.policy.counts,
                meter: meter.clone(),
                reporter: Some(reporter.clone()),
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        let cpu_limit = spec.limits.cpu_time;
        let cpu_meter = meter.clone();
        store.epoch_deadline_callback(move |_| {
            if let Some(limit) = cpu_limit
                && cpu_meter.cpu_ns() > limit.as_nanos() as u64
            {
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
        let reporter = Reporter {
            id,
            name: name.clone(),
            sink: self.inner.events.clone(),
        };
        move |limit| {
            let limit = bytesize::ByteSize(limit).display().iec();
            reporter.deny(
                &format!("output.{stream}"),
                format!("writing past {limit} of {stream}"),
            );
        }
    }

    /// Allocates a host-unique worker id.
    pub(crate) fn next_worker_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// How worker console output is decorated in this runtime.
    pub(crate) fn console(&self) -> ConsoleStyle {
        self.inner.console
    }

    fn start_failure(
        &self,
        err: wasmtime::Error,
        spec: &WorkerSpec,
        meter: &WorkerMeter,
    ) -> ExitStatus {
        if err
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return ExitStatus::FailedToStart {
                reason: format!(
                    "the host is at its capacity of {} live workers; wait for some to end or \
                     raise the capacity (--max-workers)",
                    self.inner.max_workers
                ),
            };
        }
        if err.downcast_ref::<wasmtime::Trap>().is_some() || meter.denied_memory().is_some() {
            return classify_failure(err, spec, meter);
        }
        ExitStatus::FailedToStart {
            reason: format!("{err:#}"),
        }
    }
}

/// Answers wasmtime-wasi's socket checks from the worker's network policy,
/// reporting each refusal. Implicit binds to the wildcard address (what a
/// connect or send does first) follow the grant of the connect or send.
fn network_allows(
    network: &crate::policy::NetworkPolicy,
    addr: std::net::SocketAddr,
    use_: wasmtime_wasi::sockets::SocketAddrUse,
    reporter: &Reporter,
) -> bool {
    use crate::policy::SocketUse;
    use wasmtime_wasi::sockets::SocketAddrUse as U;
    let implicit = addr.ip().is_unspecified() && addr.port() == 0;
    let (allowed, rule, verb) = match use_ {
        U::TcpConnect => (
            network.allows(addr, SocketUse::Connect),
            SocketUse::Connect,
            "tcp connect",
        ),
        U::TcpBind if implicit && !network.connect.is_empty() => {
            (true, SocketUse::Connect, "tcp bind")
        }
        U::TcpBind | U::TcpListen => (
            network.allows(addr, SocketUse::Bind),
            SocketUse::Bind,
            "tcp listen",
        ),
        U::TcpAccept => (true, SocketUse::Bind, "tcp accept"),
        U::UdpBind if implicit && !network.udp.is_empty() => (true, SocketUse::Udp, "udp bind"),
        U::UdpBind | U::UdpSend | U::UdpReceive => {
            (network.allows(addr, SocketUse::Udp), SocketUse::Udp, "udp")
        }
    };
    if !allowed {
        reporter.deny(rule.rule(), format!("{verb} {addr}"));
    } else if matches!(use_, U::TcpListen) {
        // Checked just before the listen itself: near enough to announce.
        reporter.listening(addr);
    }
    allowed
}

/// Raised from the epoch callback when a worker exhausts its CPU budget.
#[derive(Debug)]
struct CpuLimitReached;

impl std::fmt::Display for CpuLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU time limit reached")
    }
}

impl std::error::Error for CpuLimitReached {}

fn duration_ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis() as u64)
}

/// Turns the error that ended a worker's `main` (or a pool task) into its
/// exit status.
pub(crate) fn classify_failure(
    err: wasmtime::Error,
    spec: &WorkerSpec,
    meter: &WorkerMeter,
) -> ExitStatus {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return ExitStatus::Exited { code: exit.0 };
    }
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel)
        && let Some(limit) = spec.policy.fuel
    {
        return ExitStatus::Killed {
            reason: KillReason::Fuel { limit },
        };
    }
    if err.downcast_ref::<CpuLimitReached>().is_some() {
        return ExitStatus::Killed {
            reason: KillReason::CpuTime {
                limit_ms: duration_ms(spec.limits.cpu_time),
            },
        };
    }
    let message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => {
            let text = trap.to_string();
            text.strip_prefix("wasm trap: ")
                .unwrap_or(&text)
                .to_string()
        }
        None => err.root_cause().to_string(),
    };
    if let (Some(limit), Some(requested)) = (spec.limits.memory, meter.denied_memory()) {
        return ExitStatus::Killed {
            reason: KillReason::Memory {
                limit,
                requested,
                detail: message,
            },
        };
    }
    let backtrace: Vec<Frame> = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|frame| Frame {
                    function: frame.func_name().map(demangle),
                    module: frame.module().name().map(str::to_string),
                    index: frame.func_index(),
                    offset: frame.func_offset(),
                })
                .collect()
        })
        .unwrap_or_default();
    let message = explain_stack_overflow(message, err.downcast_ref::<wasmtime::Trap>(), &backtrace);
    ExitStatus::Trapped { message, backtrace }
}

/// Frames of one function in a backtrace that mark runaway recursion.
const RECURSION_DEPTH: usize = 16;

/// Guests that keep their stack in linear memory (Rust, C) overflow it into
/// an out-of-bounds access, which says nothing of recursion. Name the likely
/// cause when the backtrace is one function over and over.
fn explain_stack_overflow(
    message: String,
    trap: Option<&wasmtime::Trap>,
    backtrace: &[Frame],
) -> String {
    if trap == Some(&wasmtime::Trap::StackOverflow) {
        return format!("stack overflow: {message}");
    }
    let deepest = backtrace
        .iter()
        .map(|frame| backtrace.iter().filter(|f| f.index == frame.index).count())
        .max()
        .unwrap_or(0);
    if trap == Some(&wasmtime::Trap::MemoryOutOfBounds) && deepest >= RECURSION_DEPTH {
        return format!(
            "{message} (likely a stack overflow: one function is {deepest} frames deep)"
        );
    }
    message
}

/// A readable function name: Rust and C++ symbols demangled (without the
/// Rust hash suffix), others as they are.
fn demangle(name: &str) -> String {
    if let Ok(demangled) = rustc_demangle::try_demangle(name) {
        return format!("{demangled:#}");
    }
    if let Ok(symbol) = cpp_demangle::Symbol::new(name)
        && let Ok(demangled) = symbol.demangle()
    {
        return demangled;
    }
    name.to_string()
}

fn spawn_epoch_ticker(engines: Arc<Mutex<Vec<Engine>>>, tick: Duration, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("corral-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                for engine in engines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    engine.increment_epoch();
                }
            }
        })
        .expect("spawning the epoch ticker thread");
}

struct Compiled {
    kind: InputKind,
    component: Component,
    cache: CacheOutcome,
    input: Arc<load::Recognised>,
}

/// What a variant engine is for: fuel metering, and the wasm stack size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct VariantKey {
    fuel: bool,
    stack: usize,
}

impl VariantKey {
    /// The variant a policy needs, if the shared engine will not do.
    fn for_policy(policy: &crate::policy::Policy, default_stack: usize) -> Option<VariantKey> {
        let stack = policy.stack.map_or(default_stack, |s| s as usize);
        (policy.fuel.is_some() || stack != default_stack).then_some(VariantKey {
            fuel: policy.fuel.is_some(),
            stack,
        })
    }
}

/// An engine of its own, with a linker, for one `VariantKey`.
struct Variant {
    engine: Engine,
    linker: Linker<WorkerState>,
}

/// A program compiled and linked for a variant engine.
struct VariantProgram {
    command: Option<CommandPre<WorkerState>>,
}

/// A loaded worker program: compiled, linked against the host and ready to
/// instantiate in microseconds. Cheap to clone; spawn as many workers from
/// it as the host holds.
#[derive(Clone)]
pub struct Program(Arc<ProgramInner>);

struct ProgramInner {
    path: PathBuf,
    kind: InputKind,
    cache: CacheOutcome,
    /// The input as read: variant engines compile it again.
    input: Arc<load::Recognised>,
    pre: InstancePre<WorkerState>,
    command: Option<CommandPre<WorkerState>>,
    task: Option<TaskExports>,
    /// This program compiled for variant engines, by variant.
    variants: Mutex<HashMap<VariantKey, Arc<VariantProgram>>>,
}

/// Where a pool task's functions are, found once at load.
#[derive(Clone, Copy)]
pub(crate) struct TaskExports {
    /// `corral:worker/task#handle`.
    pub handle: ComponentExportIndex,
    /// `corral:worker/task-batch#handle-batch`, if exported.
    pub handle_batch: Option<ComponentExportIndex>,
}

impl Program {
    /// The file the program was loaded from.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// What the file held.
    pub fn kind(&self) -> InputKind {
        self.0.kind
    }

    /// Whether loading was served by the compile cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.0.cache
    }

    /// Whether it has a `main` (exports `wasi:cli/run`): it can be spawned.
    pub fn is_command(&self) -> bool {
        self.0.command.is_some()
    }

    /// Whether it exports the pool `task` interface: a `Pool` can run it.
    pub fn is_task(&self) -> bool {
        self.0.task.is_some()
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<WorkerState> {
        &self.0.pre
    }

    pub(crate) fn task_exports(&self) -> Option<TaskExports> {
        self.0.task
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("path", &self.0.path)
            .field("kind", &self.0.kind)
            .field("cache", &self.0.cache)
            .finish()
    }
}

/// What [`Runtime::inspect`] found in a file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// What the file held.
    pub kind: InputKind,
    /// The `wasi:cli/run` export that makes it a worker, if any.
    pub run_export: Option<String>,
    /// The component's imports (after adaptation, for core modules).
    pub imports: Vec<InspectedItem>,
    /// The component's exports.
    pub exports: Vec<InspectedItem>,
    /// Why linking against this host fails although every import is known.
    pub link_problem: Option<String>,
    /// Whether the compile cache served it.
    pub cache: CacheOutcome,
}

impl Inspection {
    /// Whether the file fits the `corral:worker/worker` world on this host:
    /// every import provided and `wasi:cli/run` exported.
    pub fn fits_worker(&self) -> bool {
        self.run_export.is_some()
            && self.link_problem.is_none()
            && self.imports.iter().all(|i| i.provided)
    }
}

/// One import or export of an inspected component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InspectedItem {
    /// Its full name, e.g. `wasi:cli/stdout@0.2.3`.
    pub name: String,
    /// `instance`, `function`, `type`...
    pub kind: &'static str,
    /// For imports: whether this host provides it.
    pub provided: bool,
}
