//! Inter-worker objects: queues, pipes, locks and the rest of Python's
//! synchronisation set, as plain async Rust. Nothing here may depend on
//! wasmtime, on the WIT bindings or on the runtime: the bindings adapt these
//! objects to the WIT interfaces, not the other way round.
//!
//! Every blocking operation is `async` and takes an optional timeout: a
//! waiting worker holds no thread, and dropping the future (a worker killed
//! mid-wait) cancels the wait. What a dropped future leaves behind is in
//! each operation's doc ("Cancel safety"): nothing, locally; in Redis, a
//! script whose reply was not read may have run.
//!
//! One folder per object: `<object>/mod.rs` is its API (the type the rest
//! of the host uses, its semantics and the rules both backends share),
//! `local.rs` the in-process implementation and, where there is one,
//! `redis.rs` the Redis one. `backend/` says where objects live and holds
//! the Redis plumbing; `registry.rs` names a run's objects.

/// Forwards a call to whichever backend holds the object. `$on` is an enum
/// `$kind` with `Local` and `Redis` variants (a `Local` may carry more
/// fields after the object), and `$call` uses the backend's object `$x`:
/// - `sync`: both calls return at once;
/// - `async`: both are awaited;
/// - `redis_async`: the local object answers at once, the Redis one is
///   awaited (a round trip);
/// - `redis_fallible`: as `redis_async`, for a change that cannot fail
///   locally (it returns nothing) and may fail in Redis.
///
/// Redis futures are boxed, so that the caller's future stays small: the
/// host moves it on every call, and most objects are local.
macro_rules! forward {
    (sync $kind:ident, $on:expr, |$x:ident| $call:expr) => {
        match $on {
            $kind::Local($x, ..) => $call,
            $kind::Redis($x) => $call,
        }
    };
    (async $kind:ident, $on:expr, |$x:ident| $call:expr) => {
        match $on {
            $kind::Local($x, ..) => $call.await,
            $kind::Redis($x) => Box::pin($call).await,
        }
    };
    (redis_async $kind:ident, $on:expr, |$x:ident| $call:expr) => {
        match $on {
            $kind::Local($x, ..) => $call,
            $kind::Redis($x) => Box::pin($call).await,
        }
    };
    (redis_fallible $kind:ident, $on:expr, |$x:ident| $call:expr) => {
        match $on {
            $kind::Local($x, ..) => {
                $call;
                Ok(())
            }
            $kind::Redis($x) => Box::pin($call).await,
        }
    };
}

mod backend;
mod barrier;
mod condition;
mod event;
mod fifo;
mod lock;
mod pipe;
mod queue;
mod registry;
mod semaphore;
mod stats;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use backend::Backend;
pub use barrier::{Barrier, BarrierHandle};
pub use condition::Condition;
pub use event::Event;
pub use lock::{Guard, Lock, PendingReleases};
pub use pipe::{Pipe, PipeConfig, PipeEnd, PipeInbound};
pub use queue::{Queue, QueueConfig, QueueHandle};
pub use registry::{NamedObject, Registry};
pub use semaphore::Semaphore;
pub use stats::ObjectStats;

/// The in-process implementations behind the `Local` variants of
/// [`Queue`], [`Lock`] and the rest: usable on their own, without a run.
pub mod local {
    pub use super::barrier::local::{Barrier, BarrierHandle};
    pub use super::event::local::Event;
    pub use super::lock::local::{Guard, Lock};
    pub use super::queue::local::{Queue, QueueHandle};
    pub use super::semaphore::local::Semaphore;
}

/// The Redis backend: its connection and settings, and the Redis
/// implementations behind the `Redis` variants of [`Queue`], [`Lock`] and
/// the rest.
pub mod redis {
    pub use super::backend::redis::{RedisBackend, RedisConfig};
    pub use super::barrier::redis::{RedisBarrier, RedisBarrierHandle};
    pub use super::event::redis::RedisEvent;
    pub use super::lock::redis::{RedisGuard, RedisLock};
    pub use super::queue::redis::{RedisQueue, RedisQueueHandle};
    pub use super::semaphore::redis::RedisSemaphore;
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
