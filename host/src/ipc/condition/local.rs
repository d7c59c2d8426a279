//! The condition, in this process, over a local lock. The semantics are
//! in [`super`](super).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ipc::lock::local::Lock;
use crate::ipc::{Guard, IpcError};

/// A named condition over a named lock.
pub struct Condition {
    name: String,
    lock: Arc<Lock>,
    /// Waiters in arrival order; `notify(n)` wakes the first n.
    waiters: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
    next_ticket: Mutex<u64>,
}

impl Condition {
    /// Creates a condition over `lock`.
    pub fn new(name: impl Into<String>, lock: Arc<Lock>) -> Arc<Condition> {
        Arc::new(Condition {
            name: name.into(),
            lock,
            waiters: Mutex::new(VecDeque::new()),
            next_ticket: Mutex::new(0),
        })
    }

    /// The condition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock a waiter must hold.
    pub fn lock(&self) -> &Arc<Lock> {
        &self.lock
    }

    /// Releases the lock held through `guard`, waits for a notification,
    /// then takes the lock back (waiting for it without a timeout, as Python
    /// does). `Ok(false)`: the timeout elapsed before any notification.
    ///
    /// Cancel safety: if this future is dropped while it waits for a
    /// notification or for the lock, the lock is not held and `guard` (and
    /// every other guard of this worker on the lock) holds nothing: dropping
    /// them unlocks nothing, and a notification sent to it wakes no one.
    pub async fn wait(
        &self,
        guard: &mut Guard,
        timeout: Option<Duration>,
    ) -> Result<bool, IpcError> {
        let Guard::Local(guard, _) = guard else {
            return Err(IpcError::Invalid(format!(
                "condition `{}` waits with lock `{}`, not with a Redis lock",
                self.name,
                self.lock.name()
            )));
        };
        if !Arc::ptr_eq(guard.lock(), &self.lock) {
            return Err(IpcError::Invalid(format!(
                "condition `{}` waits with lock `{}`, not `{}`",
                self.name,
                self.lock.name(),
                guard.lock().name()
            )));
        }
        let (tx, rx) = oneshot::channel();
        let ticket = {
            let mut next = self.next_ticket.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((ticket, tx));
        let depth = self.lock.suspend(guard);
        let notified = match timeout {
            None => rx.await.is_ok(),
            Some(limit) => matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(()))),
        };
        if !notified {
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(t, _)| *t != ticket);
        }
        self.lock.resume(guard, depth).await;
        Ok(notified)
    }

    /// Wakes up to `n` waiters, oldest first. Returns how many were woken.
    /// Never blocks.
    pub fn notify(&self, n: u32) -> u32 {
        let mut woken = 0;
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        while woken < n {
            let Some((_, tx)) = waiters.pop_front() else {
                break;
            };
            // A waiter that is gone (killed) does not count.
            if tx.send(()).is_ok() {
                woken += 1;
            }
        }
        woken
    }

    /// Wakes every waiter. Never blocks.
    pub fn notify_all(&self) -> u32 {
        self.notify(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_releases_the_lock_and_notify_wakes() {
        let lock = Lock::new("l", false);
        let cond = Condition::new("c", lock.clone());
        let (l2, c2) = (lock.clone(), cond.clone());
        let waiter = tokio::spawn(async move {
            let mut g = Guard::Local(l2.acquire(1, None).await.unwrap(), 1);
            let notified = c2.wait(&mut g, None).await.unwrap();
            let owner = l2.owner();
            g.release().await;
            (notified, owner)
        });
        // The waiter gives the lock up while it waits, so we can take it.
        let g = loop {
            if let Some(g) = lock.try_acquire(2).unwrap() {
                if cond.waiters.lock().unwrap().len() == 1 {
                    break g;
                }
                g.release();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(cond.notify(1), 1);
        g.release();
        assert_eq!(waiter.await.unwrap(), (true, Some(1)));
        assert_eq!(lock.owner(), None);
    }

    #[tokio::test]
    async fn timeout_returns_false_with_the_lock_held() {
        let lock = Lock::new("l", false);
        let cond = Condition::new("c", lock.clone());
        let mut g = Guard::Local(lock.acquire(1, None).await.unwrap(), 1);
        assert_eq!(
            cond.wait(&mut g, Some(Duration::from_millis(10))).await,
            Ok(false)
        );
        assert_eq!(lock.owner(), Some(1));
        assert_eq!(cond.notify_all(), 0);
        g.release().await;
        assert_eq!(lock.owner(), None);
    }

    /// A holds a re-entrant lock twice and waits with one guard; B takes the
    /// lock meanwhile. When A is killed, its other guard must not free B's
    /// lock, nor tell the next holder that its owner died.
    #[tokio::test]
    async fn a_killed_waiters_other_guard_leaves_the_new_holder_alone() {
        let lock = Lock::new("r", true);
        let cond = Condition::new("c", lock.clone());
        let waiter = tokio::spawn({
            let (lock, cond) = (lock.clone(), cond.clone());
            async move {
                let _outer = lock.acquire(1, None).await.unwrap();
                let mut inner = Guard::Local(lock.acquire(1, None).await.unwrap(), 1);
                cond.wait(&mut inner, None).await
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let b = loop {
            if cond.waiters.lock().unwrap().len() == 1
                && let Some(g) = lock.try_acquire(2).unwrap()
            {
                break g;
            }
            assert!(tokio::time::Instant::now() < deadline, "A never waited");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(lock.owner(), Some(2), "B's lock was freed under it");
        assert!(lock.try_acquire(3).unwrap().is_none());
        b.release();
        let next = lock.acquire(3, Some(Duration::from_secs(5))).await.unwrap();
        assert!(!next.previous_owner_died(), "A died outside the lock");
        next.release();
        assert_eq!(lock.owner(), None);
    }

    #[tokio::test]
    async fn wrong_lock_is_refused() {
        let cond = Condition::new("c", Lock::new("l", false));
        let other = Lock::new("other", false);
        let mut g = Guard::Local(other.acquire(1, None).await.unwrap(), 1);
        assert!(matches!(
            cond.wait(&mut g, None).await,
            Err(IpcError::Invalid(_))
        ));
        g.release().await;
    }
}
