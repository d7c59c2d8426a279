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
        forward!(sync Event, self, |e| e.name())
    }

    /// Whether the flag is set. Never waits for it (Redis: one round trip
    /// on async I/O, holding no thread).
    pub async fn is_set(&self) -> bool {
        forward!(redis_async Event, self, |e| e.is_set())
    }

    /// Sets the flag and wakes every waiter (Redis: one round trip on async
    /// I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the flag may have been set.
    pub async fn set(&self) -> Result<(), IpcError> {
        forward!(redis_fallible Event, self, |e| e.set())
    }

    /// Clears the flag (Redis: one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the flag may have been cleared.
    pub async fn clear(&self) -> Result<(), IpcError> {
        forward!(redis_fallible Event, self, |e| e.clear())
    }

    /// Waits until the flag is set: `Ok(false)` if the timeout elapsed first.
    ///
    /// Cancel safety: if this future is dropped, nothing changed; it only
    /// reads.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, IpcError> {
        forward!(async Event, self, |e| e.wait(timeout))
    }

    /// Resolves when the flag is set. For pollables.
    pub async fn ready(&self) {
        forward!(async Event, self, |e| e.ready())
    }
}

impl NamedObject for Event {
    const KIND: &'static str = "event";
    type Config = ();

    fn create(backend: &Backend, name: &str, (): ()) -> Result<Arc<Event>, IpcError> {
        Event::new(backend, name)
    }
}
