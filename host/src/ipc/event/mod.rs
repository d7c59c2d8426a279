//! Event, like `multiprocessing.Event`: a flag that workers wait on.
//!
//! In this process (`local.rs`) or in Redis (`redis.rs`: a key that exists
//! while the flag is set).
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime; the two backends do not use each other.

pub(super) mod local;
pub(super) mod redis;

use std::sync::Arc;
use std::time::Duration;

use self::redis::RedisEvent;
use super::{Backend, IpcError, NamedObject};

/// What a wait for the flag returns: `Ok(false)` if the timeout elapsed
/// first (Python's `wait` returns the flag the same way).
fn set_within(waited: Result<(), IpcError>) -> Result<bool, IpcError> {
    match waited {
        Ok(()) => Ok(true),
        Err(IpcError::Timeout) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A named event flag.
pub enum Event {
    /// In this process.
    Local(Arc<local::Event>),
    /// In Redis.
    Redis(Arc<RedisEvent>),
}

impl Event {
    /// A cleared event on `backend`.
    pub fn new(backend: &Backend, name: &str) -> Result<Arc<Event>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Event::Local(local::Event::new(name)),
            Backend::Redis(r) => Event::Redis(RedisEvent::new(r, name)?),
        }))
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        match self {
            Event::Local(e) => e.name(),
            Event::Redis(e) => e.name(),
        }
    }

    /// Whether the flag is set. Never waits for it (Redis: one round trip
    /// on async I/O, holding no thread).
    pub async fn is_set(&self) -> bool {
        match self {
            Event::Local(e) => e.is_set(),
            Event::Redis(e) => Box::pin(e.is_set()).await,
        }
    }

    /// Sets the flag and wakes every waiter (Redis: one round trip on async
    /// I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the flag may have been set.
    pub async fn set(&self) -> Result<(), IpcError> {
        match self {
            Event::Local(e) => {
                e.set();
                Ok(())
            }
            Event::Redis(e) => Box::pin(e.set()).await,
        }
    }

    /// Clears the flag (Redis: one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the flag may have been cleared.
    pub async fn clear(&self) -> Result<(), IpcError> {
        match self {
            Event::Local(e) => {
                e.clear();
                Ok(())
            }
            Event::Redis(e) => Box::pin(e.clear()).await,
        }
    }

    /// Waits until the flag is set: `Ok(false)` if the timeout elapsed first.
    ///
    /// Cancel safety: if this future is dropped, nothing changed; it only
    /// reads.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, IpcError> {
        match self {
            Event::Local(e) => e.wait(timeout).await,
            Event::Redis(e) => Box::pin(e.wait(timeout)).await,
        }
    }

    /// Resolves when the flag is set. For pollables.
    pub async fn ready(&self) {
        match self {
            Event::Local(e) => e.ready().await,
            Event::Redis(e) => Box::pin(e.ready()).await,
        }
    }
}

impl NamedObject for Event {
    const KIND: &'static str = "event";
    type Config = ();

    fn create(backend: &Backend, name: &str, (): ()) -> Result<Arc<Event>, IpcError> {
        Event::new(backend, name)
    }
}
