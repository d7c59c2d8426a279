//! Thin adapters from the WIT interfaces in `wit/` to the host's objects.
//! Each `corral:worker` interface lands in the module of the same name.

pub(crate) mod filesystem;
mod generated;
mod lock;
mod pipe;
pub(crate) mod process;
mod queue;
mod readiness;
mod sync;
mod wasi;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::ipc::{self, IpcError};
use crate::policy::{ObjectKind, Op, OpSet};
use crate::runtime::WorkerState;

use corral_worker::types::Error as WitError;
pub(crate) use generated::corral::worker as corral_worker;

/// What [`add_to_linker`] provides, by package and interface: the names a
/// component may import. Keep in step with `add_to_linker`; the end-to-end
/// tests load guests that import every one of them.
pub(crate) const PROVIDED_INTERFACES: &[(&str, &[&str])] = &[
    ("wasi:io", &["error", "poll", "streams"]),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:filesystem", &["types", "preopens"]),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
            "ip-name-lookup",
        ],
    ),
    (
        "corral:worker",
        &["types", "process", "queue", "pipe", "lock", "sync"],
    ),
];

/// Adds WASI 0.2 (from wasmtime-wasi, but `wasi:filesystem` from Corral's
/// virtual filesystem) and every Corral interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    wasi::add_to_linker(linker)?;
    filesystem::add_to_linker(linker)?;
    type Data = HasSelf<WorkerState>;
    fn get(state: &mut WorkerState) -> &mut WorkerState {
        state
    }
    corral_worker::types::add_to_linker::<WorkerState, Data>(linker, get)?;
    corral_worker::process::add_to_linker::<WorkerState, Data>(linker, get)?;
    corral_worker::queue::add_to_linker::<WorkerState, Data>(linker, get)?;
    corral_worker::pipe::add_to_linker::<WorkerState, Data>(linker, get)?;
    corral_worker::lock::add_to_linker::<WorkerState, Data>(linker, get)?;
    corral_worker::sync::add_to_linker::<WorkerState, Data>(linker, get)?;
    Ok(())
}

impl corral_worker::types::Host for WorkerState {}

impl From<IpcError> for WitError {
    fn from(e: IpcError) -> WitError {
        match e {
            IpcError::Timeout => WitError::Timeout,
            IpcError::Closed => WitError::Closed,
            IpcError::Broken => WitError::Broken,
            IpcError::Denied(why) => WitError::Denied(why),
            IpcError::NotFound(what) => WitError::NotFound(what),
            IpcError::TooLarge(limit) => WitError::TooLarge(limit),
            IpcError::Invalid(why) => WitError::Invalid(why),
            IpcError::Unavailable(why) => WitError::Invalid(format!("unavailable: {why}")),
        }
    }
}

/// A guest's handle on a named object, with the operations its policy
/// granted when it was opened: every later call is checked with one AND.
pub struct Granted<T> {
    /// The object (or this worker's handle on it).
    pub object: T,
    /// What the worker may do with it.
    pub ops: OpSet,
}

/// The table entries behind each Corral resource.
pub type QueueRes = Granted<ipc::QueueHandle>;
/// See [`QueueRes`].
pub type PipeRes = Granted<ipc::PipeEnd>;
/// See [`QueueRes`].
pub type LockRes = Granted<Arc<ipc::Lock>>;
/// See [`QueueRes`].
pub type SemaphoreRes = Granted<Arc<ipc::Semaphore>>;
/// See [`QueueRes`].
pub type EventRes = Granted<Arc<ipc::Event>>;
/// See [`QueueRes`].
pub type BarrierRes = Granted<ipc::BarrierHandle>;
/// See [`QueueRes`].
pub type ConditionRes = Granted<Arc<ipc::Condition>>;

impl WorkerState {
    /// The operations this worker's policy grants on the object `name`:
    /// `denied` (and a denial event) if none.
    fn grant(&self, kind: ObjectKind, name: &str) -> Result<OpSet, IpcError> {
        let Some(grants) = &self.policy.ipc else {
            return Ok(OpSet::ALL);
        };
        let ops = grants.ops_for(kind, name);
        if ops.is_empty() {
            let rule = format!("ipc.{}", kind.table_key());
            self.reporter
                .deny(&rule, format!("open {} `{name}`", kind.name()));
            return Err(IpcError::Denied(format!(
                "policy `{}` grants no access to {} `{name}` ({rule})",
                self.policy.name,
                kind.name()
            )));
        }
        Ok(ops)
    }

    /// Checks one operation against what was granted at open.
    fn check<T>(
        &self,
        res: &Granted<T>,
        op: Op,
        kind: ObjectKind,
        name: &str,
    ) -> Result<(), IpcError> {
        if res.ops.contains(op) {
            return Ok(());
        }
        let rule = format!("ipc.{}", kind.table_key());
        self.reporter
            .deny(&rule, format!("{} {} `{name}`", op.name(), kind.name()));
        Err(IpcError::Denied(format!(
            "policy `{}` does not grant `{}` on {} `{name}` ({rule})",
            self.policy.name,
            op.name(),
            kind.name()
        )))
    }
}

/// A WIT timeout (nanoseconds; `none` waits forever) as a `Duration`.
fn timeout(nanos: Option<u64>) -> Option<Duration> {
    nanos.map(Duration::from_nanos)
}

/// A host call's result: the outer `Result` traps the worker (a bad handle),
/// the inner one is the WIT `result<T, error>` the guest sees.
type Call<T> = wasmtime::Result<Result<T, WitError>>;

/// Wraps an IPC result as a host call's result.
fn reply<T>(result: Result<T, IpcError>) -> Call<T> {
    Ok(result.map_err(WitError::from))
}
