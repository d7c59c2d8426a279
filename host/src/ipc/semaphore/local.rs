//! The in-process semaphore: a counter under a mutex, shared by the
//! workers of one run on this host. The semantics are in [`super`](super).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::over_released;
use crate::ipc::{IpcError, with_timeout};

/// A named counting semaphore with an upper bound.
pub struct Semaphore {
    name: String,
    max: u32,
    value: Mutex<u32>,
    released: Notify,
    changed: Notify,
}

impl Semaphore {
    /// Creates a semaphore holding `initial` permits, never more than `max`.
    pub fn new(name: impl Into<String>, initial: u32, max: u32) -> Arc<Semaphore> {
        Arc::new(Semaphore {
            name: name.into(),
            max: max.max(initial),
            value: Mutex::new(initial),
            released: Notify::new(),
            changed: Notify::new(),
        })
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most permits it holds.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Permits available now. Never blocks.
    pub fn value(&self) -> u32 {
        *self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a permit if one is available now.
    pub fn try_acquire(&self) -> bool {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if *value == 0 {
            return false;
        }
        *value -= 1;
        true
    }

    /// Takes a permit, waiting for one.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        if self.try_acquire() {
            return Ok(());
        }
        with_timeout(timeout, async {
            loop {
                let released = self.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if self.try_acquire() {
                    return Ok(());
                }
                released.await;
            }
        })
        .await
    }

    /// Returns a permit. `Invalid` past the bound: more releases than
    /// acquires is a bug in the caller, as Python's `ValueError` says.
    pub fn release(&self) -> Result<(), IpcError> {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if *value >= self.max {
            return Err(over_released(&self.name, self.max));
        }
        *value += 1;
        drop(value);
        self.released.notify_one();
        self.changed.notify_waiters();
        Ok(())
    }

    /// Resolves when a permit is available. For pollables.
    pub async fn ready(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.value() > 0 {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_bounds_and_waits() {
        let s = Semaphore::new("s", 2, 2);
        s.acquire(None).await.unwrap();
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert_eq!(
            s.acquire(Some(Duration::from_millis(10))).await,
            Err(IpcError::Timeout)
        );
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.acquire(None).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.release().unwrap();
        waiter.await.unwrap().unwrap();
        s.release().unwrap();
        s.release().unwrap();
        assert!(matches!(s.release(), Err(IpcError::Invalid(_))));
        assert_eq!(s.value(), 2);
    }
}
