//! Inter-worker objects: queues, pipes, locks and the rest of Python's
//! synchronisation set, as plain async Rust. Nothing here knows of wasmtime;
//! `crate::bindings` adapts these objects to the WIT interfaces.
//!
//! Every blocking operation is `async` and takes an optional timeout: a
//! waiting worker holds no thread, and dropping the future (a worker killed
//! mid-wait) cancels the wait without side effects.

mod barrier;
mod condition;
mod event;
mod fifo;
mod lock;
mod objects;
mod pipe;
mod queue;
pub mod redis;
mod registry;
mod semaphore;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use condition::Condition;
pub use objects::{
    Backend, Barrier, BarrierHandle, Event, Guard, Lock, Queue, QueueHandle, Semaphore,
};
pub use pipe::{Pipe, PipeConfig, PipeEnd, PipeInbound};
pub use queue::QueueConfig;
pub use registry::Registry;

/// The in-process implementations behind the `Local` variants of
/// [`Queue`], [`Lock`] and the rest: usable on their own, without a run.
pub mod local {
    pub use super::barrier::{Barrier, BarrierHandle};
    pub use super::event::Event;
    pub use super::lock::{Guard, Lock};
    pub use super::queue::{Queue, QueueHandle};
    pub use super::semaphore::Semaphore;
}

/// Identifies a worker to the objects it uses (lock ownership, pipe ends).
pub type WorkerId = u64;

/// Why an IPC operation failed. Mirrors `corral:worker/types.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpcError {
    /// The timeout elapsed first.
    #[error("timed out")]
    Timeout,
    /// The object is closed, or the peer is gone and nothing is left to read.
    #[error("closed")]
    Closed,
    /// A barrier was broken: a party timed out, died, or it was aborted.
    #[error("broken")]
    Broken,
    /// The worker is not allowed this; the text names the rule.
    #[error("denied: {0}")]
    Denied(String),
    /// No object of this name exists in the run.
    #[error("no such object: {0}")]
    NotFound(String),
    /// A message exceeded the object's limit (in bytes).
    #[error("message larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The call makes no sense in the object's state; the text says why.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The object's backend (a Redis server) cannot be reached; the text
    /// names it. Guests see `invalid` with this text (WIT has no such case).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Runs `fut` with an optional timeout; `None` waits forever.
pub(crate) async fn with_timeout<T>(
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, IpcError>>,
) -> Result<T, IpcError> {
    match timeout {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or(Err(IpcError::Timeout)),
    }
}

/// How many tasks wait on one of an object's `Notify`s. A side that
/// changes the object notifies only when the count is non-zero, so the
/// common case (nobody waits) costs one atomic load instead of a `Notify`
/// update (and, for `notify_waiters`, a mutex).
///
/// No wakeup is lost: a waiter counts itself (SeqCst) before it checks the
/// object's state, and a changer loads the count (SeqCst) after it changed
/// that state (under the object's mutex, or with a SeqCst store). If the
/// load misses the waiter, the waiter's check comes after the change and
/// sees it.
#[derive(Default)]
pub(crate) struct Waiting(AtomicUsize);

impl Waiting {
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }

    /// Counts the caller as waiting until the returned guard drops.
    pub fn enter(&self) -> WaitingGuard<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        WaitingGuard(&self.0)
    }
}

pub(crate) struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
