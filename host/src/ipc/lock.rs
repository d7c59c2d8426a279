//! Lock and re-entrant lock, robust like a POSIX robust mutex: a holder that
//! ends without releasing frees the lock, and the next holder is told that
//! the previous owner died inside the critical section (EOWNERDEAD), so it
//! can repair the state the lock protects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{IpcError, WorkerId, with_timeout};

/// A named lock. With `reentrant`, the worker holding it may acquire it
/// again (like `multiprocessing.RLock`); it is free once every guard is gone.
pub struct Lock {
    name: String,
    reentrant: bool,
    state: Mutex<LockState>,
    /// Wakes one waiting acquirer per release.
    freed: Notify,
    /// Wakes every readiness watcher (pollables) per release.
    changed: Notify,
}

#[derive(Default)]
struct LockState {
    owner: Option<WorkerId>,
    /// Guards the owner holds (more than 1 only for re-entrant locks).
    depth: u32,
    /// The last owner died holding the lock; the next acquirer is told.
    owner_died: bool,
}

impl Lock {
    /// Creates a lock.
    pub fn new(name: impl Into<String>, reentrant: bool) -> Arc<Lock> {
        Arc::new(Lock {
            name: name.into(),
            reentrant,
            state: Mutex::new(LockState::default()),
            freed: Notify::new(),
            changed: Notify::new(),
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
        self.lock_state().owner
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the lock for `worker` if that is possible now.
    pub fn try_acquire(self: &Arc<Self>, worker: WorkerId) -> Result<Option<Guard>, IpcError> {
        let mut state = self.lock_state();
        match state.owner {
            None => {
                state.owner = Some(worker);
                state.depth = 1;
                let previous_owner_died = std::mem::take(&mut state.owner_died);
                Ok(Some(self.guard(worker, previous_owner_died)))
            }
            Some(owner) if owner == worker => {
                if !self.reentrant {
                    return Err(IpcError::Invalid(format!(
                        "this worker already holds lock `{}`, which is not re-entrant \
                         (acquiring it again would deadlock)",
                        self.name
                    )));
                }
                state.depth += 1;
                Ok(Some(self.guard(worker, false)))
            }
            Some(_) => Ok(None),
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
        with_timeout(timeout, async {
            loop {
                let freed = self.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if let Some(guard) = self.try_acquire(worker)? {
                    return Ok(guard);
                }
                freed.await;
            }
        })
        .await
    }

    /// Resolves when the lock is free (an acquire might succeed). For pollables.
    pub async fn ready(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.lock_state().owner.is_none() {
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

    fn unlock(&self, died: bool) {
        let mut state = self.lock_state();
        state.depth = state.depth.saturating_sub(1);
        if died {
            state.owner_died = true;
        }
        if state.depth == 0 {
            state.owner = None;
            drop(state);
            self.freed.notify_one();
            self.changed.notify_waiters();
        }
    }
}

impl Lock {
    /// Gives the lock up entirely for a condition wait, returning the depth
    /// to restore. The guard stays with its worker but holds nothing until
    /// [`Lock::resume`].
    pub(super) fn suspend(&self, guard: &mut Guard) -> u32 {
        let mut state = self.lock_state();
        let depth = std::mem::take(&mut state.depth);
        state.owner = None;
        guard.suspended = true;
        drop(state);
        self.freed.notify_one();
        self.changed.notify_waiters();
        depth
    }

    /// Takes the lock back after a condition wait, with its former depth.
    pub(super) async fn resume(self: &Arc<Self>, guard: &mut Guard, depth: u32) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.lock_state();
                if state.owner.is_none() {
                    state.owner = Some(guard.owner);
                    state.depth = depth;
                    guard.suspended = false;
                    return;
                }
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
            self.lock.unlock(false);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.released && !self.suspended {
            self.lock.unlock(true);
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
}
