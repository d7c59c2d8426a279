//! The in-process event: an atomic flag and a `Notify`, shared by the
//! workers of one run on this host. The semantics are in [`super`](super).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::set_within;
use crate::ipc::{IpcError, with_timeout};

/// A named event flag.
pub struct Event {
    name: String,
    flag: AtomicBool,
    set: Notify,
}

impl Event {
    /// Creates a cleared event.
    pub fn new(name: impl Into<String>) -> Arc<Event> {
        Arc::new(Event {
            name: name.into(),
            flag: AtomicBool::new(false),
            set: Notify::new(),
        })
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the flag is set. Never blocks.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sets the flag and wakes every waiter. Never blocks.
    pub fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.set.notify_waiters();
    }

    /// Clears the flag. Never blocks.
    pub fn clear(&self) {
        self.flag.store(false, Ordering::Release);
    }

    /// Waits until the flag is set. `Ok(false)` if the timeout elapsed first
    /// (Python's `wait` returns the flag the same way).
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, IpcError> {
        set_within(
            with_timeout(timeout, async {
                self.ready().await;
                Ok(())
            })
            .await,
        )
    }

    /// Resolves when the flag is set. For pollables.
    pub async fn ready(&self) {
        loop {
            let set = self.set.notified();
            tokio::pin!(set);
            set.as_mut().enable();
            if self.is_set() {
                return;
            }
            set.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_set_clear() {
        let e = Event::new("e");
        assert_eq!(e.wait(Some(Duration::from_millis(5))).await, Ok(false));
        let e2 = e.clone();
        let waiter = tokio::spawn(async move { e2.wait(None).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.set();
        assert_eq!(waiter.await.unwrap(), Ok(true));
        assert!(e.is_set());
        assert_eq!(e.wait(None).await, Ok(true));
        e.clear();
        assert!(!e.is_set());
    }
}
