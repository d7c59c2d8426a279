//! Bounded semaphore, like `multiprocessing.BoundedSemaphore`: permits are a
//! signalling device, not owned, so a worker may release what another took.
//!
//! In this process (`local.rs`) or in Redis (`redis.rs`: one counter key,
//! created at its initial value by whichever host uses it first). A permit
//! taken by a worker that dies (or whose host dies) is not given back by
//! itself.
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime; the two backends do not use each other.

pub(super) mod local;
pub(super) mod redis;

use std::sync::Arc;
use std::time::Duration;

use self::redis::RedisSemaphore;
use super::{Backend, IpcError, NamedObject};

/// More releases than acquires is a bug in the caller, as Python's
/// `ValueError` says.
fn over_released(semaphore: &str, max: u32) -> IpcError {
    IpcError::Invalid(format!(
        "semaphore `{semaphore}` released more times than acquired (bound {max})"
    ))
}

/// A named bounded semaphore.
pub enum Semaphore {
    /// In this process.
    Local(Arc<local::Semaphore>),
    /// In Redis.
    Redis(Arc<RedisSemaphore>),
}

impl Semaphore {
    /// A semaphore on `backend` holding `initial` permits, at most `max`.
    pub fn new(
        backend: &Backend,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<Semaphore>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Semaphore::Local(local::Semaphore::new(name, initial, max)),
            Backend::Redis(r) => Semaphore::Redis(RedisSemaphore::new(r, name, initial, max)?),
        }))
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        forward!(sync Semaphore, self, |s| s.name())
    }

    /// Permits available now. Never waits for one (Redis: one round trip
    /// on async I/O, holding no thread).
    pub async fn value(&self) -> u32 {
        forward!(redis_async Semaphore, self, |s| s.value())
    }

    /// Takes a permit if one is available now. Never waits for one (Redis:
    /// one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, as
    /// [`Semaphore::acquire`].
    pub async fn try_acquire(&self) -> Result<bool, IpcError> {
        match self {
            Semaphore::Local(s) => Ok(s.try_acquire()),
            Semaphore::Redis(s) => Box::pin(s.try_acquire()).await,
        }
    }

    /// Takes a permit, waiting for one.
    ///
    /// Cancel safety: if this future is dropped, locally no permit was
    /// taken. In Redis a script whose reply was not read yet may have taken
    /// one, which is then never given back.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        forward!(async Semaphore, self, |s| s.acquire(timeout))
    }

    /// Returns a permit: `invalid` past the bound (Redis: one round trip on
    /// async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the permit may have been returned.
    pub async fn release(&self) -> Result<(), IpcError> {
        forward!(redis_async Semaphore, self, |s| s.release())
    }

    /// Resolves when a permit is available. For pollables.
    pub async fn ready(&self) {
        forward!(async Semaphore, self, |s| s.ready())
    }
}

impl NamedObject for Semaphore {
    const KIND: &'static str = "semaphore";
    /// The permits it starts with, and the most it may hold.
    type Config = (u32, u32);

    fn create(
        backend: &Backend,
        name: &str,
        (initial, max): (u32, u32),
    ) -> Result<Arc<Semaphore>, IpcError> {
        Semaphore::new(backend, name, initial, max)
    }
}
