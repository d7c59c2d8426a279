//! The host runtime: one engine, one linker, the compile cache and the epoch
//! ticker, shared by every worker of a host. Loading programs is in
//! `program`, variant engines in `variant`, starting workers and their
//! stores in `spawn`, how a worker's failure reads in `failure`, and the
//! store type that composes the bindings' contexts in `state`. The runtime
//! uses the bindings; they never use it.

mod cache;
mod deterministic;
mod engine;
mod failure;
mod load;
mod program;
mod spawn;
mod state;
mod variant;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Linker;

pub use cache::CompileCache;
pub use engine::EngineOptions;
pub(crate) use failure::classify_failure;
pub use program::{InspectedItem, Inspection, Program};
pub(crate) use state::{MemoryLimiter, WorkerState};

use crate::error::RuntimeError;
use crate::events::{Event, EventSink};
use crate::observe::{Observatory, Recorder, Snapshot};
use crate::output::ConsoleStyle;
use program::TaskExports;
use variant::{Variant, VariantKey};

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
    /// The embedder's sink behind a [`Recorder`] that feeds `observatory`.
    events: Option<Arc<dyn EventSink>>,
    observatory: Arc<Observatory>,
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
        let linker = state::linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = match config.cache_dir {
            Some(dir) => Some(
                CompileCache::open(&dir).map_err(|source| RuntimeError::Cache { dir, source })?,
            ),
            None => None,
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticked = Arc::new(Mutex::new(vec![engine.clone()]));
        let observatory = Arc::new(Observatory::default());
        let events: Arc<dyn EventSink> = Arc::new(Recorder {
            observatory: observatory.clone(),
            next: config.events,
        });
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
                events: Some(events),
                observatory,
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

    /// What the host's workers, their named objects and its pools are
    /// doing now: live workers and those that ended in the last minute.
    /// Reads counters and takes each lock only briefly; never waits.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.observatory.snapshot()
    }

    /// The workers in [`snapshot`](Self::snapshot)'s table, live or ended
    /// in the last minute: to terminate or ask to stop by name.
    pub fn workers(&self) -> Vec<crate::Worker> {
        self.inner.observatory.workers()
    }

    /// The pools of this runtime, as in [`snapshot`](Self::snapshot),
    /// without reading every worker.
    pub fn pools(&self) -> Vec<crate::observe::PoolSnapshot> {
        self.inner.observatory.pools()
    }

    /// Terminates the pools of this runtime named `name` (all: `None`), as
    /// [`Pool::terminate`](crate::Pool::terminate); returns their names.
    pub fn terminate_pools(&self, name: Option<&str>) -> Vec<String> {
        self.inner.observatory.terminate_pools(name)
    }

    /// Time since this runtime was created.
    pub fn uptime(&self) -> Duration {
        self.inner.observatory.uptime()
    }

    /// Where workers and pools report what they are doing.
    pub(crate) fn observatory(&self) -> &Arc<Observatory> {
        &self.inner.observatory
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.inner.events {
            sink.event(&event);
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
