//! What a worker is waiting on: set by the IPC bindings only once a call
//! actually blocks (a queue `get` on an empty queue, a lock held by
//! another), so a call that completes at once costs nothing more than
//! before: no lock, no allocation.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The blocking call a worker is in, if any. One per worker start.
#[derive(Debug, Default)]
pub struct Activity(Mutex<Option<Wait>>);

/// A blocking call in progress.
#[derive(Debug, Clone)]
struct Wait {
    op: &'static str,
    object: String,
    since: Instant,
}

impl Activity {
    /// Runs `call` (operation `op`, e.g. `queue.get`, on the object named
    /// `object`); if its first poll does not finish it, the worker is shown
    /// waiting on it until it does or is dropped.
    pub async fn track<F: Future>(&self, op: &'static str, object: &str, call: F) -> F::Output {
        let mut call = pin!(call);
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        if let Poll::Ready(output) = first {
            return output;
        }
        let _waiting = self.begin(op, object);
        call.await
    }

    fn begin(&self, op: &'static str, object: &str) -> Waiting<'_> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Wait {
            op,
            object: object.into(),
            since: Instant::now(),
        });
        Waiting(self)
    }

    /// The operation, the object's name and for how long, if the worker is
    /// waiting in a tracked call now.
    pub fn current(&self) -> Option<(&'static str, String, Duration)> {
        let wait = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some((wait.op, wait.object, wait.since.elapsed()))
    }
}

/// Clears the activity when the blocking call ends (or is cancelled).
struct Waiting<'a>(&'a Activity);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_call_that_blocks_is_shown() {
        let activity = Activity::default();
        assert_eq!(activity.track("queue.get", "jobs", async { 7 }).await, 7);
        assert!(activity.current().is_none());
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let waiting = activity.track("queue.get", "jobs", rx);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        let (op, object, _) = activity.current().expect("shown while it blocks");
        assert_eq!((op, object.as_str()), ("queue.get", "jobs"));
        tx.send(3).unwrap();
        assert_eq!(waiting.await.unwrap(), 3);
        assert!(activity.current().is_none());
    }
}
