//! The in-process queue: a [`Fifo`] plus `JoinableQueue` counting, shared
//! by the workers of one run on this host. The semantics are in
//! [`super`](super).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{QueueConfig, check_max, nothing_taken};
use crate::ipc::fifo::{Bounds, Fifo};
use crate::ipc::{IpcError, with_timeout};

/// A named queue. Shared by every worker of a run; workers use it through a
/// [`QueueHandle`] each, which tracks what that worker has taken.
pub struct Queue {
    name: String,
    acknowledged: bool,
    fifo: Fifo,
    /// Items put and not yet marked done (or lost). An atomic: every put
    /// counts, and a mutex here would be a second lock per message.
    unfinished: AtomicU64,
    all_done: Notify,
    lost: AtomicU64,
}

impl Queue {
    /// Creates a queue.
    pub fn new(name: impl Into<String>, config: QueueConfig) -> Arc<Queue> {
        Arc::new(Queue {
            name: name.into(),
            acknowledged: config.acknowledged,
            fifo: Fifo::new(config.bounds()),
            unfinished: AtomicU64::new(0),
            all_done: Notify::new(),
            lost: AtomicU64::new(0),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Messages waiting to be taken. Never blocks.
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// Depth, bytes and counts of messages put and taken. Never waits.
    pub(crate) fn stats(&self) -> crate::ipc::fifo::FifoStats {
        self.fifo.stats()
    }

    /// Whether no message is waiting. Never blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages fit before `put` waits.
    pub fn capacity(&self) -> usize {
        self.fifo.capacity()
    }

    /// What the queue holds at most.
    pub(in crate::ipc) fn bounds(&self) -> &Bounds {
        self.fifo.bounds()
    }

    /// Whether items of dead consumers are redelivered.
    pub fn is_acknowledged(&self) -> bool {
        self.acknowledged
    }

    /// Items whose consumer ended before marking them done, in the default
    /// (at-most-once) mode.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Closes the queue: puts fail with `Closed`, gets drain what is left and
    /// then fail with `Closed`. Never blocks.
    pub fn close(&self) {
        self.fifo.close();
    }

    /// Opens a handle for one worker.
    pub fn handle(self: &Arc<Self>) -> QueueHandle {
        QueueHandle {
            queue: self.clone(),
            taken: AtomicU64::new(0),
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts `n` items unfinished until the returned claim is kept; a
    /// claim dropped unkept (the put failed, or its future was dropped: a
    /// producer killed while it waited for room) takes them off again.
    fn claim_unfinished(&self, n: u64) -> UnfinishedClaim<'_> {
        self.unfinished.fetch_add(n, Ordering::SeqCst);
        UnfinishedClaim { queue: self, n }
    }

    fn finish(&self, n: u64) {
        let before = self
            .unfinished
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        if before <= n {
            self.all_done.notify_waiters();
        }
    }

    fn to_bytes(messages: Vec<Vec<u8>>) -> Vec<Bytes> {
        messages.into_iter().map(Bytes::from).collect()
    }

    /// Waits until every item ever put has been marked done (or lost).
    pub async fn join(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        with_timeout(timeout, async {
            loop {
                let done = self.all_done.notified();
                tokio::pin!(done);
                done.as_mut().enable();
                if self.unfinished.load(Ordering::SeqCst) == 0 {
                    return Ok(());
                }
                done.await;
            }
        })
        .await
    }

    /// Resolves when a `get` would not wait. For pollables.
    pub async fn ready_to_get(&self) {
        self.fifo.ready_to_pop().await
    }

    /// Resolves when a `put` of one message would not wait. For pollables.
    pub async fn ready_to_put(&self) {
        self.fifo.ready_to_push().await
    }
}

/// Items counted unfinished for a put that has not happened yet; see
/// [`Queue::claim_unfinished`].
struct UnfinishedClaim<'a> {
    queue: &'a Queue,
    n: u64,
}

impl UnfinishedClaim<'_> {
    /// The items were put: they stay unfinished until marked done.
    fn keep(mut self) {
        self.n = 0;
    }
}

impl Drop for UnfinishedClaim<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.queue.finish(self.n);
        }
    }
}

/// One worker's use of a queue. Dropping it (the worker ended, however)
/// settles the items it took and did not mark done; see the module docs.
pub struct QueueHandle {
    queue: Arc<Queue>,
    /// Items taken and not yet marked done.
    taken: AtomicU64,
    /// Their bytes, oldest first, in acknowledged mode only (to redeliver
    /// them); in the default mode only the count matters.
    kept: Mutex<VecDeque<Bytes>>,
}

impl QueueHandle {
    /// The queue this handle uses.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    fn record_taken(&self, items: &[Bytes]) {
        self.taken.fetch_add(items.len() as u64, Ordering::Relaxed);
        if self.queue.acknowledged {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend(items.iter().cloned());
        }
    }

    /// Puts one message, waiting while the queue is full.
    ///
    /// Cancel safety: if this future is dropped, the message was either put
    /// whole or not at all, and the unfinished count is as if the call was
    /// never made.
    pub async fn put(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), IpcError> {
        // Counted before the item is visible, so a fast consumer's task_done
        // never runs ahead of the count.
        let claim = self.queue.claim_unfinished(1);
        let result = match self.queue.fifo.try_push_one(Bytes::from(message)) {
            Ok(None) => Ok(()),
            // The waiting future is boxed so that this one stays small: the
            // host moves it on every call, and most calls never wait.
            Ok(Some(item)) => Box::pin(with_timeout(timeout, self.queue.fifo.push_one(item))).await,
            Err(e) => Err(e),
        };
        if result.is_ok() {
            claim.keep();
        }
        result
    }

    /// Puts a batch, all or nothing, waiting until all of it fits.
    ///
    /// Cancel safety: if this future is dropped, either the whole batch was
    /// put or none of it, and the unfinished count is as if the call was
    /// never made.
    pub async fn put_many(
        &self,
        messages: Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), IpcError> {
        let n = messages.len() as u64;
        let mut items = Queue::to_bytes(messages);
        let claim = self.queue.claim_unfinished(n);
        let result = match self.queue.fifo.try_push_all(&mut items) {
            Ok(true) => Ok(()),
            Ok(false) => Box::pin(with_timeout(timeout, self.queue.fifo.push_all(items))).await,
            Err(e) => Err(e),
        };
        if result.is_ok() {
            claim.keep();
        }
        result
    }

    /// Puts one message if there is room now. `Ok(false)`: the queue is full.
    pub fn try_put(&self, message: Vec<u8>) -> Result<bool, IpcError> {
        let claim = self.queue.claim_unfinished(1);
        let result = self.queue.fifo.try_push_one(Bytes::from(message));
        if matches!(result, Ok(None)) {
            claim.keep();
        }
        result.map(|back| back.is_none())
    }

    /// Takes one message, waiting while the queue is empty.
    pub async fn get(&self, timeout: Option<Duration>) -> Result<Bytes, IpcError> {
        let item = match self.queue.fifo.try_pop_one()? {
            Some(item) => item,
            None => Box::pin(with_timeout(timeout, self.queue.fifo.pop_one())).await?,
        };
        self.record_taken(std::slice::from_ref(&item));
        Ok(item)
    }

    /// Takes between 1 and `max` messages, waiting for the first.
    pub async fn get_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Bytes>, IpcError> {
        check_max(max)?;
        let items = match self.queue.fifo.try_pop(max)? {
            items if !items.is_empty() => items,
            _ => Box::pin(with_timeout(timeout, self.queue.fifo.pop(max))).await?,
        };
        self.record_taken(&items);
        Ok(items)
    }

    /// Takes one message if one is there now.
    pub fn try_get(&self) -> Result<Option<Bytes>, IpcError> {
        let item = self.queue.fifo.try_pop_one()?;
        if let Some(item) = &item {
            self.record_taken(std::slice::from_ref(item));
        }
        Ok(item)
    }

    /// Marks the oldest message this worker took as done.
    pub fn task_done(&self) -> Result<(), IpcError> {
        let had = self
            .taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if had.is_err() {
            return Err(nothing_taken(&self.queue.name));
        }
        if self.queue.acknowledged {
            self.kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
        }
        self.queue.finish(1);
        Ok(())
    }
}

impl Drop for QueueHandle {
    fn drop(&mut self) {
        let n = *self.taken.get_mut();
        if n == 0 {
            return;
        }
        if self.queue.acknowledged {
            let kept = std::mem::take(self.kept.get_mut().unwrap_or_else(|e| e.into_inner()));
            self.queue.fifo.push_front(kept.into_iter());
        } else {
            self.queue.lost.fetch_add(n, Ordering::Relaxed);
            self.queue.finish(n);
        }
    }
}
