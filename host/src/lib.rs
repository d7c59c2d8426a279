//! Corral runs WebAssembly components as sandboxed worker processes, in the
//! manner of Python's `multiprocessing`: spawn, join, terminate, with limits.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use corral::{Runtime, RuntimeConfig, WorkerSpec};
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let program = runtime.load("hello.wasm")?;
//! let worker = runtime.spawn(&program, WorkerSpec::new("hello-1").args(["a", "b"]));
//! println!("{}", worker.join().await);
//! # Ok(()) }
//! ```

mod bindings;
mod budget;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod feed;
pub mod ipc;
pub mod ledger;
pub mod manifest;
mod meter;
pub mod observe;
pub mod output;
pub mod policy;
pub mod pollset;
pub mod pool;
mod reporter;
pub mod restart;
pub mod run;
pub mod runtime;
pub mod status;
pub mod supervisor;
pub mod units;
pub mod vfs;
pub mod worker;

pub use error::{LoadError, RuntimeError};
pub use events::{Event, EventLog, EventSink};
pub use output::{ConsoleStyle, Stdio};
pub use policy::{Limits, Policy, PolicyFile, Profile};
pub use pool::{Pool, PoolError, PoolOptions, PoolStats, TaskError, TaskResult};
pub use run::Run;
pub use runtime::{EngineOptions, Inspection, Program, Runtime, RuntimeConfig};
pub use status::{CacheOutcome, ExitStatus, Frame, InputKind, KillReason};
pub use supervisor::{GroupId, GroupSpec, Membership, Strategy, SupervisionTree};
pub use worker::{Stdin, Worker, WorkerReport, WorkerSpec};
