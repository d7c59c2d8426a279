//! The named objects workers use, whichever backend holds them: each is an
//! enum over the in-process implementation (the default) and the Redis one
//! (shared by several hosts), with one API. On the local path an operation
//! costs one `match` more than calling the local object directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::redis::{
    RedisBackend, RedisBarrier, RedisBarrierHandle, RedisEvent, RedisGuard, RedisLock, RedisQueue,
    RedisQueueHandle, RedisSemaphore,
};
use super::{IpcError, WorkerId, barrier, event, lock, queue, semaphore};

/// Where a named object lives.
#[derive(Clone, Default, Debug)]
pub enum Backend {
    /// In this process: shared by the workers of one run on this host.
    #[default]
    Local,
    /// In a Redis server: shared by every host using the same namespace.
    Redis(Arc<RedisBackend>),
}

impl Backend {
    /// `local`, or the Redis address and namespace.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local => "local".into(),
            Backend::Redis(r) => format!("{} (namespace `{}`)", r.address(), r.namespace()),
        }
    }
}

/// A named queue (see [`queue`](super::queue) for the local semantics and
/// `docs/scale-out.md` for Redis).
pub enum Queue {
    /// In this process.
    Local(Arc<queue::Queue>),
    /// In Redis.
    Redis(Arc<RedisQueue>),
}

impl Queue {
    /// A queue on `backend`.
    pub fn new(
        backend: &Backend,
        name: &str,
        config: queue::QueueConfig,
    ) -> Result<Arc<Queue>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Queue::Local(queue::Queue::new(name, config)),
            Backend::Redis(r) => Queue::Redis(RedisQueue::new(r, name, config)?),
        }))
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        match self {
            Queue::Local(q) => q.name(),
            Queue::Redis(q) => q.name(),
        }
    }

    /// Messages waiting to be taken. Never waits (Redis: one round trip).
    pub fn len(&self) -> usize {
        match self {
            Queue::Local(q) => q.len(),
            Queue::Redis(q) => q.len(),
        }
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages fit before `put` waits.
    pub fn capacity(&self) -> usize {
        match self {
            Queue::Local(q) => q.capacity(),
            Queue::Redis(q) => q.capacity(),
        }
    }

    /// Whether messages of dead consumers are delivered again.
    pub fn is_acknowledged(&self) -> bool {
        match self {
            Queue::Local(q) => q.is_acknowledged(),
            Queue::Redis(q) => q.is_acknowledged(),
        }
    }

    /// Messages whose consumer ended before marking them done (at-most-once
    /// mode).
    pub fn lost(&self) -> u64 {
        match self {
            Queue::Local(q) => q.lost(),
            Queue::Redis(q) => q.lost(),
        }
    }

    /// Closes the queue: puts fail, gets drain what is left and then fail
    /// with `closed`. A Redis queue that cannot be reached stays open (see
    /// [`Queue::try_close`]).
    pub fn close(&self) {
        if let Err(e) = self.try_close() {
            tracing::warn!("corral: cannot close queue `{}`: {e}", self.name());
        }
    }

    /// Closes the queue, saying whether its backend could be reached.
    pub fn try_close(&self) -> Result<(), IpcError> {
        match self {
            Queue::Local(q) => {
                q.close();
                Ok(())
            }
            Queue::Redis(q) => q.close(),
        }
    }

    /// Waits until every message ever put has been marked done (or lost).
    pub async fn join(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        match self {
            Queue::Local(q) => q.join(timeout).await,
            Queue::Redis(q) => Box::pin(q.join(timeout)).await,
        }
    }

    /// Resolves when a `get` would not wait. For pollables.
    pub async fn ready_to_get(&self) {
        match self {
            Queue::Local(q) => q.ready_to_get().await,
            Queue::Redis(q) => Box::pin(q.ready_to_get()).await,
        }
    }

    /// Resolves when a `put` of one message would not wait. For pollables.
    pub async fn ready_to_put(&self) {
        match self {
            Queue::Local(q) => q.ready_to_put().await,
            Queue::Redis(q) => Box::pin(q.ready_to_put()).await,
        }
    }

    /// Opens a handle for one worker.
    pub fn handle(self: &Arc<Self>) -> QueueHandle {
        QueueHandle {
            inner: match &**self {
                Queue::Local(q) => HandleOn::Local(q.handle()),
                Queue::Redis(q) => HandleOn::Redis(q.handle()),
            },
            queue: self.clone(),
        }
    }
}

/// One worker's use of a queue; dropping it settles what the worker took
/// and did not mark done.
pub struct QueueHandle {
    queue: Arc<Queue>,
    inner: HandleOn,
}

enum HandleOn {
    Local(queue::QueueHandle),
    Redis(RedisQueueHandle),
}

impl QueueHandle {
    /// The queue this handle uses.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Puts one message, waiting while the queue is full.
    pub async fn put(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.put(message, timeout).await,
            HandleOn::Redis(h) => Box::pin(h.put_many(vec![message], timeout)).await,
        }
    }

    /// Puts a batch, all or nothing, waiting until all of it fits.
    pub async fn put_many(
        &self,
        messages: Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.put_many(messages, timeout).await,
            HandleOn::Redis(h) => Box::pin(h.put_many(messages, timeout)).await,
        }
    }

    /// Puts one message if there is room now: `Ok(false)` when full.
    pub fn try_put(&self, message: Vec<u8>) -> Result<bool, IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.try_put(message),
            HandleOn::Redis(h) => h.try_put(message),
        }
    }

    /// Takes one message, waiting while the queue is empty.
    pub async fn get(&self, timeout: Option<Duration>) -> Result<Bytes, IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.get(timeout).await,
            HandleOn::Redis(h) => {
                let mut items = Box::pin(h.get_many(1, timeout)).await?;
                items
                    .pop()
                    .ok_or_else(|| IpcError::Invalid("an empty take".into()))
            }
        }
    }

    /// Takes between 1 and `max` messages, waiting for the first.
    pub async fn get_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Bytes>, IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.get_many(max, timeout).await,
            HandleOn::Redis(h) => Box::pin(h.get_many(max, timeout)).await,
        }
    }

    /// Takes one message if one is there now.
    pub fn try_get(&self) -> Result<Option<Bytes>, IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.try_get(),
            HandleOn::Redis(h) => h.try_get(),
        }
    }

    /// Marks the oldest message this worker took as done.
    pub fn task_done(&self) -> Result<(), IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.task_done(),
            HandleOn::Redis(h) => h.task_done(),
        }
    }
}

/// A named lock, plain or re-entrant, robust against its holder's death.
pub enum Lock {
    /// In this process, with the counter behind its fencing tokens.
    Local(Arc<lock::Lock>, AtomicU64),
    /// In Redis.
    Redis(Arc<RedisLock>),
}

impl Lock {
    /// A lock on `backend`.
    pub fn new(backend: &Backend, name: &str, reentrant: bool) -> Result<Arc<Lock>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Lock::Local(lock::Lock::new(name, reentrant), AtomicU64::new(0)),
            Backend::Redis(r) => Lock::Redis(RedisLock::new(r, name, reentrant)?),
        }))
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        match self {
            Lock::Local(l, _) => l.name(),
            Lock::Redis(l) => l.name(),
        }
    }

    /// Whether the holder may acquire it again.
    pub fn is_reentrant(&self) -> bool {
        match self {
            Lock::Local(l, _) => l.is_reentrant(),
            Lock::Redis(l) => l.is_reentrant(),
        }
    }

    /// The worker holding it, if any (for Redis: a worker of this host).
    pub fn owner(&self) -> Option<WorkerId> {
        match self {
            Lock::Local(l, _) => l.owner(),
            Lock::Redis(l) => l.owner(),
        }
    }

    /// The fencing token of a fresh local acquisition by `worker`, which
    /// `again` says already held the lock (a re-entrant acquire keeps it).
    fn local_guard(fences: &AtomicU64, guard: lock::Guard, again: bool) -> Guard {
        // Only the holder bumps the counter, so tokens grow holder by holder.
        let token = match again {
            true => fences.load(Ordering::Relaxed),
            false => fences.fetch_add(1, Ordering::Relaxed) + 1,
        };
        Guard::Local(guard, token)
    }

    /// Takes the lock for `worker` if that is possible now.
    pub fn try_acquire(self: &Arc<Self>, worker: WorkerId) -> Result<Option<Guard>, IpcError> {
        match &**self {
            Lock::Local(l, fences) => {
                let again = l.owner() == Some(worker);
                Ok(l.try_acquire(worker)?
                    .map(|g| Self::local_guard(fences, g, again)))
            }
            Lock::Redis(l) => Ok(l.try_acquire(worker)?.map(Guard::Redis)),
        }
    }

    /// Takes the lock for `worker`, waiting while another worker holds it.
    pub async fn acquire(
        self: &Arc<Self>,
        worker: WorkerId,
        timeout: Option<Duration>,
    ) -> Result<Guard, IpcError> {
        match &**self {
            Lock::Local(l, fences) => {
                let again = l.owner() == Some(worker);
                let guard = l.acquire(worker, timeout).await?;
                Ok(Self::local_guard(fences, guard, again))
            }
            Lock::Redis(l) => Ok(Guard::Redis(Box::pin(l.acquire(worker, timeout)).await?)),
        }
    }

    /// Resolves when the lock is free. For pollables.
    pub async fn ready(&self) {
        match self {
            Lock::Local(l, _) => l.ready().await,
            Lock::Redis(l) => Box::pin(l.ready()).await,
        }
    }
}

/// Proof of holding a lock: release it, or dropping it means the worker
/// ended inside the critical section (the next holder is told).
pub enum Guard {
    /// Of a local lock, with its fencing token.
    Local(lock::Guard, u64),
    /// Of a Redis lock.
    Redis(RedisGuard),
}

impl Guard {
    /// Whether the previous holder ended while holding the lock.
    pub fn previous_owner_died(&self) -> bool {
        match self {
            Guard::Local(g, _) => g.previous_owner_died(),
            Guard::Redis(g) => g.previous_owner_died(),
        }
    }

    /// A number larger than any earlier holder's: a store that remembers
    /// the largest token it saw can refuse a stale holder's late writes.
    pub fn fencing_token(&self) -> u64 {
        match self {
            Guard::Local(_, token) => *token,
            Guard::Redis(g) => g.fencing_token(),
        }
    }

    /// The worker holding it.
    pub fn owner(&self) -> WorkerId {
        match self {
            Guard::Local(g, _) => g.owner(),
            Guard::Redis(g) => g.owner(),
        }
    }

    /// Releases the lock normally.
    pub fn release(self) {
        match self {
            Guard::Local(g, _) => g.release(),
            Guard::Redis(g) => g.release(),
        }
    }
}

/// A named bounded semaphore.
pub enum Semaphore {
    /// In this process.
    Local(Arc<semaphore::Semaphore>),
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
            Backend::Local => Semaphore::Local(semaphore::Semaphore::new(name, initial, max)),
            Backend::Redis(r) => Semaphore::Redis(RedisSemaphore::new(r, name, initial, max)?),
        }))
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        match self {
            Semaphore::Local(s) => s.name(),
            Semaphore::Redis(s) => s.name(),
        }
    }

    /// Permits available now.
    pub fn value(&self) -> u32 {
        match self {
            Semaphore::Local(s) => s.value(),
            Semaphore::Redis(s) => s.value(),
        }
    }

    /// Takes a permit if one is available now.
    pub fn try_acquire(&self) -> Result<bool, IpcError> {
        match self {
            Semaphore::Local(s) => Ok(s.try_acquire()),
            Semaphore::Redis(s) => s.try_acquire(),
        }
    }

    /// Takes a permit, waiting for one.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        match self {
            Semaphore::Local(s) => s.acquire(timeout).await,
            Semaphore::Redis(s) => Box::pin(s.acquire(timeout)).await,
        }
    }

    /// Returns a permit: `invalid` past the bound.
    pub fn release(&self) -> Result<(), IpcError> {
        match self {
            Semaphore::Local(s) => s.release(),
            Semaphore::Redis(s) => s.release(),
        }
    }

    /// Resolves when a permit is available. For pollables.
    pub async fn ready(&self) {
        match self {
            Semaphore::Local(s) => s.ready().await,
            Semaphore::Redis(s) => Box::pin(s.ready()).await,
        }
    }
}

/// A named event flag.
pub enum Event {
    /// In this process.
    Local(Arc<event::Event>),
    /// In Redis.
    Redis(Arc<RedisEvent>),
}

impl Event {
    /// A cleared event on `backend`.
    pub fn new(backend: &Backend, name: &str) -> Result<Arc<Event>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Event::Local(event::Event::new(name)),
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

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        match self {
            Event::Local(e) => e.is_set(),
            Event::Redis(e) => e.is_set(),
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<(), IpcError> {
        match self {
            Event::Local(e) => {
                e.set();
                Ok(())
            }
            Event::Redis(e) => e.set(),
        }
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<(), IpcError> {
        match self {
            Event::Local(e) => {
                e.clear();
                Ok(())
            }
            Event::Redis(e) => e.clear(),
        }
    }

    /// Waits until the flag is set: `Ok(false)` if the timeout elapsed first.
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

/// A named barrier for a fixed number of parties.
pub enum Barrier {
    /// In this process.
    Local(Arc<barrier::Barrier>),
    /// In Redis.
    Redis(Arc<RedisBarrier>),
}

impl Barrier {
    /// A barrier on `backend` for `parties` workers.
    pub fn new(backend: &Backend, name: &str, parties: u32) -> Result<Arc<Barrier>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Barrier::Local(barrier::Barrier::new(name, parties)),
            Backend::Redis(r) => Barrier::Redis(RedisBarrier::new(r, name, parties)?),
        }))
    }

    /// The barrier's name.
    pub fn name(&self) -> &str {
        match self {
            Barrier::Local(b) => b.name(),
            Barrier::Redis(b) => b.name(),
        }
    }

    /// How many workers must arrive.
    pub fn parties(&self) -> u32 {
        match self {
            Barrier::Local(b) => b.parties(),
            Barrier::Redis(b) => b.parties(),
        }
    }

    /// How many are waiting now.
    pub fn waiting(&self) -> u32 {
        match self {
            Barrier::Local(b) => b.waiting(),
            Barrier::Redis(b) => b.waiting(),
        }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        match self {
            Barrier::Local(b) => b.is_broken(),
            Barrier::Redis(b) => b.is_broken(),
        }
    }

    /// Breaks the barrier: every waiter gets `broken`.
    pub fn abort(&self) -> Result<(), IpcError> {
        match self {
            Barrier::Local(b) => {
                b.abort();
                Ok(())
            }
            Barrier::Redis(b) => b.abort(),
        }
    }

    /// Mends a broken barrier for a new round.
    pub fn reset(&self) -> Result<(), IpcError> {
        match self {
            Barrier::Local(b) => {
                b.reset();
                Ok(())
            }
            Barrier::Redis(b) => b.reset(),
        }
    }

    /// The round in progress.
    pub fn round(&self) -> u64 {
        match self {
            Barrier::Local(b) => b.round(),
            Barrier::Redis(b) => b.round(),
        }
    }

    /// Resolves when the barrier is broken or round `round` is over.
    pub async fn ready_after(&self, round: u64) {
        match self {
            Barrier::Local(b) => b.ready_after(round).await,
            Barrier::Redis(b) => Box::pin(b.ready_after(round)).await,
        }
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
    Local(barrier::BarrierHandle),
    Redis(RedisBarrierHandle),
}

impl BarrierHandle {
    /// The barrier.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Arrives and waits for the other parties: this worker's arrival index.
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<u32, IpcError> {
        match &mut self.inner {
            BarrierOn::Local(h) => h.wait(timeout).await,
            BarrierOn::Redis(h) => Box::pin(h.wait(timeout)).await,
        }
    }
}
