//! A bounded FIFO of byte messages that can be closed: the core shared by
//! queues (many producers and consumers) and pipes (one per direction).

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{IpcError, Waiting};

/// What a FIFO holds at most: messages, bytes in all, bytes in one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Messages held before a push waits.
    pub capacity: usize,
    /// Bytes held (all messages together) before a push waits.
    pub max_bytes: usize,
    /// The largest message accepted.
    pub max_message: usize,
}

impl Bounds {
    /// Bounds with the degenerate cases removed: room for at least one
    /// message, and no message larger than the whole FIFO (it could never
    /// be put, so it is `TooLarge` at once rather than waiting forever).
    pub fn new(capacity: usize, max_bytes: usize, max_message: usize) -> Bounds {
        Bounds {
            capacity: capacity.max(1),
            max_bytes,
            max_message: max_message.min(max_bytes),
        }
    }

    /// Checks a batch of messages (their lengths) before anything is
    /// allocated or added for it: a batch of more messages than the FIFO
    /// holds is `Invalid`, and one with a message over `max_message` or more
    /// bytes than `max_bytes` is `TooLarge`: it could never fit. The count is
    /// checked first, in constant time, so a huge batch costs nothing. The
    /// rule of every FIFO, local or in Redis.
    pub fn check_batch(
        &self,
        lengths: impl ExactSizeIterator<Item = usize>,
    ) -> Result<(), IpcError> {
        let count = lengths.len();
        if count > self.capacity {
            return Err(IpcError::Invalid(format!(
                "a batch of {count} messages can never fit a capacity of {}",
                self.capacity
            )));
        }
        let mut total = 0usize;
        for len in lengths {
            if len > self.max_message {
                return Err(IpcError::TooLarge(self.max_message as u64));
            }
            total = total.saturating_add(len);
        }
        if total > self.max_bytes {
            return Err(IpcError::TooLarge(self.max_bytes as u64));
        }
        Ok(())
    }
}

/// Bounded FIFO. Its [`Bounds`] limit what producers may add; items put
/// back (redelivery) may exceed them, so nothing is ever dropped to make room.
pub(crate) struct Fifo {
    bounds: Bounds,
    state: Mutex<FifoState>,
    /// Wakes one waiting consumer per added item.
    items_added: Notify,
    /// Wakes one waiting producer per freed slot.
    slots_freed: Notify,
    /// Wakes every readiness watcher (pollables) on any change.
    changed: Notify,
    /// Consumers waiting on `items_added`.
    consumers_waiting: Waiting,
    /// Producers waiting on `slots_freed`.
    producers_waiting: Waiting,
    /// Readiness watchers waiting on `changed`.
    watchers: Waiting,
}

struct FifoState {
    items: VecDeque<Bytes>,
    /// The bytes of `items`, together.
    bytes: usize,
    closed: bool,
    /// Messages ever added and taken (redeliveries not counted), for
    /// snapshots: counted under the lock each push and pop takes anyway.
    pushed: u64,
    popped: u64,
}

/// What a FIFO holds now and has passed, read under its lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FifoStats {
    pub len: usize,
    pub bytes: usize,
    pub pushed: u64,
    pub popped: u64,
}

impl FifoState {
    /// Whether `count` more messages of `bytes` bytes in all fit now.
    fn has_room(&self, bounds: &Bounds, count: usize, bytes: usize) -> bool {
        self.items.len() + count <= bounds.capacity && self.bytes + bytes <= bounds.max_bytes
    }
}

impl Fifo {
    pub fn new(bounds: Bounds) -> Fifo {
        Fifo {
            bounds,
            state: Mutex::new(FifoState {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                pushed: 0,
                popped: 0,
            }),
            items_added: Notify::new(),
            slots_freed: Notify::new(),
            changed: Notify::new(),
            consumers_waiting: Waiting::default(),
            producers_waiting: Waiting::default(),
            watchers: Waiting::default(),
        }
    }

    /// After `n` items were added: wakes up to `n` waiting consumers, and
    /// the watchers.
    fn added(&self, n: usize) {
        if self.consumers_waiting.any() {
            for _ in 0..n {
                self.items_added.notify_one();
            }
        }
        self.changed_now();
    }

    /// After `n` items were taken: wakes up to `n` waiting producers, one
    /// more consumer if items are left (another consumer may be waiting for
    /// them), and the watchers.
    fn taken(&self, n: usize, more: bool) {
        if self.producers_waiting.any() {
            for _ in 0..n {
                self.slots_freed.notify_one();
            }
        }
        if more && self.consumers_waiting.any() {
            self.items_added.notify_one();
        }
        self.changed_now();
    }

    fn changed_now(&self) {
        if self.watchers.any() {
            self.changed.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FifoState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.bounds.capacity
    }

    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Depth, bytes and counts, in one short hold of the lock.
    pub fn stats(&self) -> FifoStats {
        let state = self.lock();
        FifoStats {
            len: state.items.len(),
            bytes: state.bytes,
            pushed: state.pushed,
            popped: state.popped,
        }
    }

    /// Adds every message if they all fit now. `Ok(false)`: not enough room.
    pub fn try_push_all(&self, messages: &mut Vec<Bytes>) -> Result<bool, IpcError> {
        self.bounds.check_batch(messages.iter().map(Bytes::len))?;
        let bytes = messages.iter().map(Bytes::len).sum();
        let mut state = self.lock();
        if state.closed {
            return Err(IpcError::Closed);
        }
        if !state.has_room(&self.bounds, messages.len(), bytes) {
            return Ok(false);
        }
        let added = messages.len();
        state.bytes += bytes;
        state.pushed += added as u64;
        state.items.extend(messages.drain(..));
        drop(state);
        self.added(added);
        Ok(true)
    }

    /// Adds one message if there is room now: `Ok(None)`. When full, the
    /// message comes back: `Ok(Some(message))`. The single-message path of
    /// queues and pipes, without the batch's vector.
    pub fn try_push_one(&self, message: Bytes) -> Result<Option<Bytes>, IpcError> {
        if message.len() > self.bounds.max_message {
            return Err(IpcError::TooLarge(self.bounds.max_message as u64));
        }
        let mut state = self.lock();
        if state.closed {
            return Err(IpcError::Closed);
        }
        if !state.has_room(&self.bounds, 1, message.len()) {
            return Ok(Some(message));
        }
        state.bytes += message.len();
        state.pushed += 1;
        state.items.push_back(message);
        drop(state);
        self.added(1);
        Ok(None)
    }

    /// Adds one message, waiting for room. Cancel-safe.
    pub async fn push_one(&self, mut message: Bytes) -> Result<(), IpcError> {
        let _waiting = self.producers_waiting.enter();
        loop {
            let freed = self.slots_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_push_one(message)? {
                None => return Ok(()),
                Some(back) => message = back,
            }
            freed.await;
        }
    }

    /// Adds every message, waiting for room. Cancel-safe: nothing is added
    /// unless everything is.
    pub async fn push_all(&self, mut messages: Vec<Bytes>) -> Result<(), IpcError> {
        let _waiting = self.producers_waiting.enter();
        loop {
            let freed = self.slots_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_push_all(&mut messages)? {
                return Ok(());
            }
            freed.await;
        }
    }

    /// Takes up to `max` items if any are there. `Ok(empty)`: none now.
    pub fn try_pop(&self, max: usize) -> Result<Vec<Bytes>, IpcError> {
        let mut state = self.lock();
        if state.items.is_empty() {
            return if state.closed {
                Err(IpcError::Closed)
            } else {
                Ok(Vec::new())
            };
        }
        let n = max.min(state.items.len());
        let taken: Vec<Bytes> = state.items.drain(..n).collect();
        state.bytes -= taken.iter().map(Bytes::len).sum::<usize>();
        state.popped += n as u64;
        let more = !state.items.is_empty();
        drop(state);
        self.taken(n, more);
        Ok(taken)
    }

    /// Takes one item if there is one. `Ok(None)`: none now; `Closed` once
    /// closed and drained.
    pub fn try_pop_one(&self) -> Result<Option<Bytes>, IpcError> {
        let mut state = self.lock();
        let Some(item) = state.items.pop_front() else {
            return if state.closed {
                Err(IpcError::Closed)
            } else {
                Ok(None)
            };
        };
        state.bytes -= item.len();
        state.popped += 1;
        let more = !state.items.is_empty();
        drop(state);
        self.taken(1, more);
        Ok(Some(item))
    }

    /// Takes one item, waiting for it. Cancel-safe.
    pub async fn pop_one(&self) -> Result<Bytes, IpcError> {
        let _waiting = self.consumers_waiting.enter();
        loop {
            let added = self.items_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(item) = self.try_pop_one()? {
                return Ok(item);
            }
            added.await;
        }
    }

    /// Takes between 1 and `max` items, waiting for the first. Drains what is
    /// left after a close, then fails with `Closed`. Cancel-safe.
    pub async fn pop(&self, max: usize) -> Result<Vec<Bytes>, IpcError> {
        let _waiting = self.consumers_waiting.enter();
        loop {
            let added = self.items_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let taken = self.try_pop(max)?;
            if !taken.is_empty() {
                return Ok(taken);
            }
            added.await;
        }
    }

    /// Puts items back at the head, in order (redelivery after a consumer
    /// died). Ignores capacity and closing: they were accepted once already.
    pub fn push_front(&self, items: impl DoubleEndedIterator<Item = Bytes>) {
        let mut state = self.lock();
        let mut n = 0;
        for item in items.rev() {
            state.bytes += item.len();
            state.items.push_front(item);
            n += 1;
        }
        drop(state);
        self.added(n);
    }

    /// Closes the FIFO: producers fail from now on, consumers drain what is
    /// left. Wakes everyone so they see it.
    pub fn close(&self) {
        self.lock().closed = true;
        self.items_added.notify_waiters();
        self.slots_freed.notify_waiters();
        self.changed.notify_waiters();
    }

    /// Resolves when a pop would not wait: an item is there or it is closed.
    pub async fn ready_to_pop(&self) {
        self.ready_when(|state| !state.items.is_empty()).await
    }

    /// Resolves when a push of one item would not wait (or would fail:
    /// closed). With bytes, one that is not larger than what is free now.
    pub async fn ready_to_push(&self) {
        self.ready_when(|state| state.has_room(&self.bounds, 1, 0))
            .await
    }

    /// Resolves when `ready` holds of the state, or the FIFO is closed.
    async fn ready_when(&self, ready: impl Fn(&FifoState) -> bool) {
        let _watching = self.watchers.enter();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if ready(&state) || state.closed {
                    return;
                }
            }
            changed.await;
        }
    }
}
