//! The in-process lock: one atomic word for the holder, shared by the
//! workers of one run on this host. The semantics are in [`super`](super).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::relock;
use crate::ipc::{IpcError, Waiting, WorkerId, with_timeout};

/// `Lock::owner` when nobody holds the lock; a holder is stored as its
/// worker id + 1.
const FREE: u64 = 0;

/// A named lock. With `reentrant`, the worker holding it may acquire it
/// again (like `multiprocessing.RLock`); it is free once every guard is gone.
///
/// Taking a free lock is one compare-and-swap and releasing it one store:
/// no mutex, and no `Notify` unless someone waits (`waiting`).
pub struct Lock {
    name: String,
    reentrant: bool,
    /// The holder (worker id + 1), or `FREE`.
    owner: AtomicU64,
    /// Guards the holder has (more than 1 only for re-entrant locks).
    /// Only the holder touches it, between its acquire and release.
    depth: AtomicU32,
    /// The last owner died holding the lock; the next acquirer is told.
    owner_died: AtomicBool,
    /// Wakes one waiting acquirer per release.
    freed: Notify,
    /// Wakes every readiness watcher (pollables) per release.
    changed: Notify,
    /// Acquirers and watchers waiting: a release notifies only if some.
    waiting: Waiting,
}

impl Lock {
    /// Creates a lock.
    pub fn new(name: impl Into<String>, reentrant: bool) -> Arc<Lock> {
        Arc::new(Lock {
            name: name.into(),
            reentrant,
            owner: AtomicU64::new(FREE),
            depth: AtomicU32::new(0),
            owner_died: AtomicBool::new(false),
            freed: Notify::new(),
            changed: Notify::new(),
            waiting: Waiting::default(),
        })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the holder may acquire it again.
    pub fn is_reentrant(&self) -> bool {
        self.reentrant
    }

    /// The worker holding the lock, if any. Never blocks.
    pub fn owner(&self) -> Option<WorkerId> {
        match self.owner.load(Ordering::SeqCst) {
            FREE => None,
            holder => Some(holder - 1),
        }
    }

    /// Takes the lock for `worker` if that is possible now.
    pub fn try_acquire(self: &Arc<Self>, worker: WorkerId) -> Result<Option<Guard>, IpcError> {
        let me = worker.wrapping_add(1);
        match self
            .owner
            .compare_exchange(FREE, me, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                self.depth.store(1, Ordering::Relaxed);
                let previous_owner_died = self.owner_died.swap(false, Ordering::SeqCst);
                Ok(Some(self.guard(worker, previous_owner_died)))
            }
            Err(holder) if holder == me => {
                if !self.reentrant {
                    return Err(relock(&self.name));
                }
                self.depth.fetch_add(1, Ordering::Relaxed);
                Ok(Some(self.guard(worker, false)))
            }
            Err(_) => Ok(None),
        }
    }

    /// Takes the lock for `worker`, waiting while another worker holds it.
    pub async fn acquire(
        self: &Arc<Self>,
        worker: WorkerId,
        timeout: Option<Duration>,
    ) -> Result<Guard, IpcError> {
        if let Some(guard) = self.try_acquire(worker)? {
            return Ok(guard);
        }
        // Boxed so that this future stays small: the host moves it on every
        // call, and most calls never wait.
        Box::pin(with_timeout(timeout, self.wait_for(worker))).await
    }

    async fn wait_for(self: &Arc<Self>, worker: WorkerId) -> Result<Guard, IpcError> {
        let _waiting = self.waiting.enter();
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(guard) = self.try_acquire(worker)? {
                return Ok(guard);
            }
            freed.await;
        }
    }

    /// Resolves when the lock is free (an acquire might succeed). For pollables.
    pub async fn ready(&self) {
        let _waiting = self.waiting.enter();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.owner.load(Ordering::SeqCst) == FREE {
                return;
            }
            changed.await;
        }
    }

    fn guard(self: &Arc<Self>, owner: WorkerId, previous_owner_died: bool) -> Guard {
        Guard {
            lock: self.clone(),
            owner,
            previous_owner_died,
            released: false,
            suspended: false,
        }
    }

    /// Frees the lock (the holder calls it) and wakes a waiter if any.
    fn free(&self) {
        self.owner.store(FREE, Ordering::SeqCst);
        if self.waiting.any() {
            self.freed.notify_one();
            self.changed.notify_waiters();
        }
    }

    /// Gives up one of `owner`'s guards. A guard of a worker that does not
    /// hold the lock now is one that a condition wait suspended: its worker
    /// gave the lock up, and another may hold it; such a guard unlocks
    /// nothing (only the holder changes `owner`, so the check cannot race).
    fn unlock(&self, owner: WorkerId, died: bool) {
        if self.owner.load(Ordering::SeqCst) != owner.wrapping_add(1) {
            return;
        }
        if died {
            self.owner_died.store(true, Ordering::SeqCst);
        }
        let before = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(1))
            })
            .unwrap_or(0);
        if before <= 1 {
            self.free();
        }
    }
}

impl Lock {
    /// Gives the lock up entirely for a condition wait, returning the depth
    /// to restore. The guard stays with its worker but holds nothing until
    /// [`Lock::resume`].
    pub(in crate::ipc) fn suspend(&self, guard: &mut Guard) -> u32 {
        let depth = self.depth.swap(0, Ordering::Relaxed);
        guard.suspended = true;
        self.free();
        depth
    }

    /// Takes the lock back after a condition wait, with its former depth.
    pub(in crate::ipc) async fn resume(self: &Arc<Self>, guard: &mut Guard, depth: u32) {
        let _waiting = self.waiting.enter();
        let me = guard.owner.wrapping_add(1);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self
                .owner
                .compare_exchange(FREE, me, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.depth.store(depth, Ordering::Relaxed);
                guard.suspended = false;
                return;
            }
            freed.await;
        }
    }
}

/// Proof of holding a lock. [`release`](Guard::release) it when done;
/// dropping it without releasing means its worker died inside the critical
/// section: the lock is freed and the next holder is told.
pub struct Guard {
    lock: Arc<Lock>,
    owner: WorkerId,
    previous_owner_died: bool,
    released: bool,
    /// Given up for a condition wait: dropping it now must not unlock.
    suspended: bool,
}

impl Guard {
    /// Whether the worker that held the lock before ended while holding it,
    /// so the state it protects may be half-updated.
    pub fn previous_owner_died(&self) -> bool {
        self.previous_owner_died
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &Arc<Lock> {
        &self.lock
    }

    /// The worker holding it.
    pub fn owner(&self) -> WorkerId {
        self.owner
    }

    /// Releases the lock normally.
    pub fn release(mut self) {
        self.released = true;
        if !self.suspended {
            self.lock.unlock(self.owner, false);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.released && !self.suspended {
            self.lock.unlock(self.owner, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Option<Duration> = Some(Duration::from_millis(20));

    #[tokio::test]
    async fn mutual_exclusion_and_timeout() {
        let lock = Lock::new("l", false);
        let g = lock.acquire(1, None).await.unwrap();
        assert!(!g.previous_owner_died());
        assert!(lock.try_acquire(2).unwrap().is_none());
        assert_eq!(lock.acquire(2, SHORT).await.err(), Some(IpcError::Timeout));
        g.release();
        let g2 = lock.acquire(2, SHORT).await.unwrap();
        assert_eq!(lock.owner(), Some(2));
        g2.release();
        assert_eq!(lock.owner(), None);
    }

    #[tokio::test]
    async fn waiter_gets_it_when_released() {
        let lock = Lock::new("l", false);
        let g = lock.acquire(1, None).await.unwrap();
        let l2 = lock.clone();
        let waiter = tokio::spawn(async move { l2.acquire(2, None).await.map(|g| g.owner()) });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!waiter.is_finished());
        g.release();
        assert_eq!(waiter.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn non_reentrant_relock_is_an_error_not_a_deadlock() {
        let lock = Lock::new("l", false);
        let _g = lock.acquire(1, None).await.unwrap();
        assert!(matches!(
            lock.acquire(1, None).await,
            Err(IpcError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn reentrant_lock_frees_after_last_guard() {
        let lock = Lock::new("r", true);
        let a = lock.acquire(1, None).await.unwrap();
        let b = lock.acquire(1, None).await.unwrap();
        assert!(lock.try_acquire(2).unwrap().is_none());
        a.release();
        assert!(lock.try_acquire(2).unwrap().is_none());
        b.release();
        assert!(lock.try_acquire(2).unwrap().is_some());
    }

    #[tokio::test]
    async fn dead_holder_frees_lock_and_next_holder_is_told_once() {
        let lock = Lock::new("l", false);
        let g = lock.acquire(1, None).await.unwrap();
        let l2 = lock.clone();
        let waiter = tokio::spawn(async move {
            l2.acquire(2, None).await.map(|g| {
                let died = g.previous_owner_died();
                g.release();
                died
            })
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(g); // the holder's worker died
        assert_eq!(waiter.await.unwrap(), Ok(true));
        let next = lock.acquire(3, None).await.unwrap();
        assert!(!next.previous_owner_died(), "reported to one holder only");
    }

    /// The lock-free fast path and the waiter count must neither let two
    /// holders in nor lose a wakeup (a lost one hangs, and the timeout fails).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contended_by_many_tasks_excludes_and_never_hangs() {
        use std::sync::atomic::AtomicBool;
        let lock = Lock::new("l", false);
        let inside = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..8u64)
            .map(|worker| {
                let (lock, inside) = (lock.clone(), inside.clone());
                tokio::spawn(async move {
                    for i in 0..5_000u32 {
                        let guard = lock.acquire(worker, None).await.unwrap();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                        if i % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                        inside.store(false, Ordering::SeqCst);
                        drop(guard);
                    }
                })
            })
            .collect();
        let all = futures::future::try_join_all(tasks);
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("a wakeup was lost")
            .unwrap();
        assert_eq!(lock.owner(), None);
    }
}
