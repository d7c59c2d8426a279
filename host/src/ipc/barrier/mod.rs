//! Barrier, like `multiprocessing.Barrier`: `parties` workers wait until all
//! have arrived, then all go on. A waiter that times out, a party that ends
//! (dies or exits) while others wait or after taking part, or `abort` breaks
//! it: every waiter, present and future, gets `Broken` until `reset`.
//!
//! In this process (`local.rs`) or in Redis (`redis.rs`, parties on any
//! hosts; see `docs/scale-out.md` for what a dead host breaks).
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime; the two backends do not use each other.

pub(super) mod local;
pub(super) mod redis;

use std::sync::Arc;
use std::time::Duration;

use self::redis::{RedisBarrier, RedisBarrierHandle};
use super::{Backend, IpcError, NamedObject};

/// A named barrier for a fixed number of parties.
pub enum Barrier {
    /// In this process.
    Local(Arc<local::Barrier>),
    /// In Redis.
    Redis(Arc<RedisBarrier>),
}

impl Barrier {
    /// A barrier on `backend` for `parties` workers.
    pub fn new(backend: &Backend, name: &str, parties: u32) -> Result<Arc<Barrier>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Barrier::Local(local::Barrier::new(name, parties)),
            Backend::Redis(r) => Barrier::Redis(RedisBarrier::new(r, name, parties)?),
        }))
    }

    /// The barrier's name.
    pub fn name(&self) -> &str {
        forward!(sync Barrier, self, |b| b.name())
    }

    /// How many workers must arrive.
    pub fn parties(&self) -> u32 {
        forward!(sync Barrier, self, |b| b.parties())
    }

    /// How many are waiting now (Redis: one round trip on async I/O,
    /// holding no thread; 0 if Redis cannot be reached).
    pub async fn waiting(&self) -> u32 {
        forward!(redis_async Barrier, self, |b| b.waiting())
    }

    /// Whether the barrier is broken (Redis: one round trip on async I/O).
    pub async fn is_broken(&self) -> bool {
        forward!(redis_async Barrier, self, |b| b.is_broken())
    }

    /// Breaks the barrier: every waiter gets `broken` (Redis: one round
    /// trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the barrier may have been broken.
    pub async fn abort(&self) -> Result<(), IpcError> {
        forward!(redis_fallible Barrier, self, |b| b.abort())
    }

    /// Mends a broken barrier for a new round (Redis: one round trip on
    /// async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the barrier may have been mended.
    pub async fn reset(&self) -> Result<(), IpcError> {
        forward!(redis_fallible Barrier, self, |b| b.reset())
    }

    /// The round in progress (Redis: one round trip on async I/O).
    pub async fn round(&self) -> u64 {
        forward!(redis_async Barrier, self, |b| b.round())
    }

    /// Resolves when the barrier is broken or round `round` is over.
    pub async fn ready_after(&self, round: u64) {
        forward!(async Barrier, self, |b| b.ready_after(round))
    }

    /// Opens a handle for one worker.
    pub fn handle(self: &Arc<Self>) -> BarrierHandle {
        BarrierHandle {
            inner: match &**self {
                Barrier::Local(b) => BarrierOn::Local(b.handle()),
                Barrier::Redis(b) => BarrierOn::Redis(b.handle()),
            },
            barrier: self.clone(),
        }
    }
}

/// One worker's use of a barrier; dropping it (the worker ended) breaks the
/// barrier if the worker took part in it or others are waiting.
pub struct BarrierHandle {
    barrier: Arc<Barrier>,
    inner: BarrierOn,
}

enum BarrierOn {
    Local(local::BarrierHandle),
    Redis(RedisBarrierHandle),
}

impl BarrierHandle {
    /// The barrier.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Arrives and waits for the other parties: this worker's arrival index.
    ///
    /// Cancel safety: if this future is dropped after this worker arrived
    /// and before the round completed, the barrier is broken for the other
    /// parties, as if this worker had timed out (in Redis, if the reply to
    /// its arrival was not read yet, once its handle drops).
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<u32, IpcError> {
        match &mut self.inner {
            BarrierOn::Local(h) => h.wait(timeout).await,
            BarrierOn::Redis(h) => Box::pin(h.wait(timeout)).await,
        }
    }
}

impl NamedObject for Barrier {
    const KIND: &'static str = "barrier";
    /// How many parties must arrive.
    type Config = u32;

    fn create(backend: &Backend, name: &str, parties: u32) -> Result<Arc<Barrier>, IpcError> {
        Barrier::new(backend, name, parties)
    }
}
