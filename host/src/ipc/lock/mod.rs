//! Lock and re-entrant lock, robust like a POSIX robust mutex: a holder that
//! ends without releasing frees the lock, and the next holder is told that
//! the previous owner died inside the critical section (EOWNERDEAD), so it
//! can repair the state the lock protects.
//!
//! Plain or re-entrant, in this process (`local.rs`) or in Redis
//! (`redis.rs`, with a lease its host renews; see `docs/scale-out.md`).
//! Every acquisition carries a fencing token larger than any earlier
//! holder's.
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime; the two backends do not use each other.

pub(super) mod local;
pub(super) mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use self::redis::{RedisGuard, RedisLock};
use super::{Backend, IpcError, NamedObject, WorkerId};

/// A worker acquiring a plain lock it already holds would wait for itself.
fn relock(lock: &str) -> IpcError {
    IpcError::Invalid(format!(
        "this worker already holds lock `{lock}`, which is not re-entrant \
         (acquiring it again would deadlock)"
    ))
}

/// A named lock, plain or re-entrant, robust against its holder's death.
pub enum Lock {
    /// In this process, with the counter behind its fencing tokens.
    Local(Arc<local::Lock>, AtomicU64),
    /// In Redis.
    Redis(Arc<RedisLock>),
}

impl Lock {
    /// A lock on `backend`.
    pub fn new(backend: &Backend, name: &str, reentrant: bool) -> Result<Arc<Lock>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Lock::Local(local::Lock::new(name, reentrant), AtomicU64::new(0)),
            Backend::Redis(r) => Lock::Redis(RedisLock::new(r, name, reentrant)?),
        }))
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        forward!(sync Lock, self, |l| l.name())
    }

    /// Whether the holder may acquire it again.
    pub fn is_reentrant(&self) -> bool {
        forward!(sync Lock, self, |l| l.is_reentrant())
    }

    /// The worker holding it, if any (for Redis: a worker of this host).
    pub fn owner(&self) -> Option<WorkerId> {
        forward!(sync Lock, self, |l| l.owner())
    }

    /// The fencing token of a fresh local acquisition by `worker`, which
    /// `again` says already held the lock (a re-entrant acquire keeps it).
    fn local_guard(fences: &AtomicU64, guard: local::Guard, again: bool) -> Guard {
        // Only the holder bumps the counter, so tokens grow holder by holder.
        let token = match again {
            true => fences.load(Ordering::Relaxed),
            false => fences.fetch_add(1, Ordering::Relaxed) + 1,
        };
        Guard::Local(guard, token)
    }

    /// Takes the lock for `worker` if that is possible now. Never waits for
    /// the holder (Redis: one round trip on async I/O, holding no thread).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, as
    /// [`Lock::acquire`].
    pub async fn try_acquire(
        self: &Arc<Self>,
        worker: WorkerId,
    ) -> Result<Option<Guard>, IpcError> {
        match &**self {
            Lock::Local(l, fences) => {
                let again = l.owner() == Some(worker);
                Ok(l.try_acquire(worker)?
                    .map(|g| Self::local_guard(fences, g, again)))
            }
            Lock::Redis(l) => Ok(Box::pin(l.try_acquire(worker)).await?.map(Guard::Redis)),
        }
    }

    /// Takes the lock for `worker`, waiting while another worker holds it.
    ///
    /// Cancel safety: if this future is dropped, locally the lock was not
    /// taken. In Redis a script whose reply was not read yet may have taken
    /// it: nobody renews that lease, so it frees itself once the lease
    /// expires and the next holder is told its previous owner died.
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
        forward!(async Lock, self, |l| l.ready())
    }
}

/// Proof of holding a lock: release it, or dropping it means the worker
/// ended inside the critical section (the next holder is told).
pub enum Guard {
    /// Of a local lock, with its fencing token.
    Local(local::Guard, u64),
    /// Of a Redis lock.
    Redis(RedisGuard),
}

impl Guard {
    /// Whether the previous holder ended while holding the lock.
    pub fn previous_owner_died(&self) -> bool {
        forward!(sync Guard, self, |g| g.previous_owner_died())
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
        forward!(sync Guard, self, |g| g.owner())
    }

    /// Releases the lock normally (Redis: waits for the answer on async
    /// I/O, so the worker's next acquire finds it free).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, as
    /// [`RedisGuard::release`].
    pub async fn release(self) {
        forward!(redis_async Guard, self, |g| g.release())
    }

    /// Releases the lock normally without waiting: locally at once; in
    /// Redis the release goes in the background, and this host's next
    /// acquire of the lock waits for it. Returns what resolves once Redis
    /// answered, for whoever must know the lock is free everywhere (a
    /// worker's end). Never blocks: the guest's `[drop]guard` is a plain
    /// call, which costs the lock's hot path less than an async one.
    pub fn release_soon(self) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Guard::Local(g, _) => {
                g.release();
                None
            }
            Guard::Redis(g) => g.release_soon(),
        }
    }
}

impl NamedObject for Lock {
    const KIND: &'static str = "lock";
    /// Whether the lock is re-entrant.
    type Config = bool;

    fn create(backend: &Backend, name: &str, reentrant: bool) -> Result<Arc<Lock>, IpcError> {
        Lock::new(backend, name, reentrant)
    }
}

/// A worker's lock releases still on their way to Redis
/// ([`Guard::release_soon`]): its end waits for them, so a worker that has
/// ended has released its locks everywhere, and no other host's next
/// holder is told that its owner died.
#[derive(Default)]
pub struct PendingReleases(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl PendingReleases {
    /// Remembers `release`, forgetting those already done (so a worker
    /// that takes and releases locks in a loop holds a few at most).
    pub fn push(&self, release: tokio::task::JoinHandle<()>) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|release| !release.is_finished());
        pending.push(release);
    }

    /// Waits until every remembered release reached Redis, or `deadline`
    /// passed (Redis unreachable: the leases expire instead).
    ///
    /// Cancel safety: the releases go on in the background if this future
    /// is dropped.
    pub async fn settle(&self, deadline: Duration) {
        let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(pending);
        let _ = tokio::time::timeout(deadline, all).await;
    }
}
