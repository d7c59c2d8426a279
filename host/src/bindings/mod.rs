//! Thin adapters from the WIT interfaces in `wit/` to the host's objects.
//! Each `corral:worker` interface lands in the module of the same name.

mod lock;
mod pipe;
mod process;
mod queue;
mod readiness;
mod sync;
mod wasi;

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::ipc::IpcError;
use crate::runtime::WorkerState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "corral:worker/imports",
        imports: {
            "corral:worker/queue.[method]queue.put": async | trappable,
            "corral:worker/queue.[method]queue.put-many": async | trappable,
            "corral:worker/queue.[method]queue.get": async | trappable,
            "corral:worker/queue.[method]queue.get-many": async | trappable,
            "corral:worker/queue.[method]queue.join": async | trappable,
            "corral:worker/pipe.[method]endpoint.send": async | trappable,
            "corral:worker/pipe.[method]endpoint.recv": async | trappable,
            "corral:worker/lock.[method]lock.acquire": async | trappable,
            "corral:worker/sync.[method]semaphore.acquire": async | trappable,
            "corral:worker/sync.[method]event.wait": async | trappable,
            "corral:worker/sync.[method]barrier.wait": async | trappable,
            "corral:worker/sync.[method]condition.wait": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "corral:worker/queue.queue": crate::ipc::QueueHandle,
            "corral:worker/pipe.endpoint": crate::ipc::PipeEnd,
            "corral:worker/lock.lock": crate::bindings::lock::LockRef,
            "corral:worker/lock.guard": crate::ipc::Guard,
            "corral:worker/sync.semaphore": crate::bindings::sync::SemaphoreRef,
            "corral:worker/sync.event": crate::bindings::sync::EventRef,
            "corral:worker/sync.barrier": crate::ipc::BarrierHandle,
            "corral:worker/sync.condition": crate::bindings::sync::ConditionRef,
        },
    });
}

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
    crate::vfs::wasi::add_to_linker(linker)?;
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
        }
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
