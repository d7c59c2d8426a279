//! Queue: a named, bounded, many-producer many-consumer FIFO of byte
//! messages with `multiprocessing.JoinableQueue` semantics, in this process
//! (`local.rs`) or in Redis (`redis.rs`, shared by several hosts; see
//! `docs/scale-out.md`).
//!
//! Delivery when a consumer ends between `get` and `task_done`:
//! - default (at-most-once): the item counts as done and is lost; `join`
//!   does not wait for it. [`Queue::lost`] counts such items.
//! - acknowledged (at-least-once): the item goes back to the head of the
//!   queue and is delivered again to another consumer.
//!
//! Each operation costs the local path one `match` more than calling the
//! local queue directly.
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime; the two backends do not use each other.

pub(super) mod local;
pub(super) mod redis;
mod redis_depth;
mod redis_scripts;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use self::redis::{RedisQueue, RedisQueueHandle};
use super::fifo::Bounds;
use super::{Backend, IpcError, NamedObject};

/// How a queue is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// How many messages it holds before `put` waits.
    pub capacity: usize,
    /// The largest message accepted, in bytes; larger ones get `TooLarge`.
    pub max_message: usize,
    /// The bytes of all messages held together before `put` waits; a
    /// batch larger than this gets `TooLarge`. Bounds what the queue makes
    /// its host hold, whatever `capacity` and `max_message` are.
    pub max_bytes: usize,
    /// Redeliver items whose consumer ended before `task_done`.
    pub acknowledged: bool,
}

/// The default [`QueueConfig::max_bytes`]: 64 MiB, so the default 1024
/// messages of up to 1 MiB cannot make the host hold a gigabyte per queue.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

impl QueueConfig {
    fn bounds(&self) -> Bounds {
        Bounds::new(self.capacity, self.max_bytes, self.max_message)
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 1024,
            max_message: 1 << 20,
            max_bytes: DEFAULT_MAX_BYTES,
            acknowledged: false,
        }
    }
}

/// A message taken and not yet marked done is what `task-done` needs.
fn nothing_taken(queue: &str) -> IpcError {
    IpcError::Invalid(format!(
        "task-done on queue `{queue}` without a message taken and not yet done"
    ))
}

/// A `get-many` takes at least one message.
fn check_max(max: usize) -> Result<(), IpcError> {
    match max {
        0 => Err(IpcError::Invalid("get-many needs max >= 1".into())),
        _ => Ok(()),
    }
}

/// A named queue, local or in Redis (see the module docs).
pub enum Queue {
    /// In this process.
    Local(Arc<local::Queue>),
    /// In Redis.
    Redis(Arc<RedisQueue>),
}

impl Queue {
    /// A queue on `backend`.
    pub fn new(backend: &Backend, name: &str, config: QueueConfig) -> Result<Arc<Queue>, IpcError> {
        Ok(Arc::new(match backend {
            Backend::Local => Queue::Local(local::Queue::new(name, config)),
            Backend::Redis(r) => Queue::Redis(RedisQueue::new(r, name, config)?),
        }))
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        forward!(sync Queue, self, |q| q.name())
    }

    /// Messages waiting to be taken. Never waits (Redis: one round trip on
    /// async I/O, holding no thread).
    pub async fn len(&self) -> usize {
        forward!(redis_async Queue, self, |q| q.len())
    }

    /// Whether no message is waiting.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// How many messages fit before `put` waits.
    pub fn capacity(&self) -> usize {
        forward!(sync Queue, self, |q| q.capacity())
    }

    /// Checks a batch of messages of these lengths against the queue's
    /// bounds, before anything is allocated for it: `TooLarge` or `Invalid`
    /// if it could never fit (see [`QueueConfig`]). Never waits.
    pub fn check_batch(
        &self,
        lengths: impl ExactSizeIterator<Item = usize>,
    ) -> Result<(), IpcError> {
        forward!(sync Queue, self, |q| q.bounds().check_batch(lengths))
    }

    /// Whether messages of dead consumers are delivered again.
    pub fn is_acknowledged(&self) -> bool {
        forward!(sync Queue, self, |q| q.is_acknowledged())
    }

    /// Messages whose consumer ended before marking them done (at-most-once
    /// mode). Redis: one round trip on async I/O, holding no thread.
    pub async fn lost(&self) -> u64 {
        forward!(redis_async Queue, self, |q| q.lost())
    }

    /// Closes the queue: puts fail, gets drain what is left and then fail
    /// with `closed`. A Redis queue that cannot be reached stays open (see
    /// [`Queue::try_close`]).
    pub async fn close(&self) {
        if let Err(e) = self.try_close().await {
            tracing::warn!("corral: cannot close queue `{}`: {e}", self.name());
        }
    }

    /// Closes the queue, saying whether its backend could be reached
    /// (Redis: one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the queue may have been closed.
    pub async fn try_close(&self) -> Result<(), IpcError> {
        forward!(redis_fallible Queue, self, |q| q.close())
    }

    /// Waits until every message ever put has been marked done (or lost).
    ///
    /// Cancel safety: if this future is dropped, nothing changed; it only
    /// reads.
    pub async fn join(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        forward!(async Queue, self, |q| q.join(timeout))
    }

    /// Resolves when a `get` would not wait. For pollables.
    pub async fn ready_to_get(&self) {
        forward!(async Queue, self, |q| q.ready_to_get())
    }

    /// Resolves when a `put` of one message would not wait. For pollables.
    pub async fn ready_to_put(&self) {
        forward!(async Queue, self, |q| q.ready_to_put())
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
    Local(local::QueueHandle),
    Redis(RedisQueueHandle),
}

impl QueueHandle {
    /// The queue this handle uses.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Puts one message, waiting while the queue is full.
    ///
    /// Cancel safety: if this future is dropped, the message was put or it
    /// was not, and the unfinished count matches (locally: never put; in
    /// Redis: put only if a script already ran whose reply was not read).
    pub async fn put(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), IpcError> {
        match &self.inner {
            HandleOn::Local(h) => h.put(message, timeout).await,
            HandleOn::Redis(h) => Box::pin(h.put_many(vec![message], timeout)).await,
        }
    }

    /// Puts a batch, all or nothing, waiting until all of it fits.
    ///
    /// Cancel safety: as [`QueueHandle::put`], for the whole batch: never
    /// part of it.
    pub async fn put_many(
        &self,
        messages: Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), IpcError> {
        forward!(async HandleOn, &self.inner, |h| h.put_many(messages, timeout))
    }

    /// Puts one message if there is room now: `Ok(false)` when full.
    /// Never waits for room (Redis: one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, if
    /// this future is dropped, the message may have been put.
    pub async fn try_put(&self, message: Vec<u8>) -> Result<bool, IpcError> {
        forward!(redis_async HandleOn, &self.inner, |h| h.try_put(message))
    }

    /// Takes one message, waiting while the queue is empty.
    ///
    /// Cancel safety: if this future is dropped, locally no message was
    /// taken. In Redis a script whose reply was not read yet may have taken
    /// it: in acknowledged mode it stays in this consumer's in-flight list
    /// and goes back to the queue when the handle drops; in the default mode
    /// it is lost, and counted lost (and so done for `join`) when the handle
    /// drops, as a message taken and never marked done.
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
    ///
    /// Cancel safety: as [`QueueHandle::get`], for every message of the
    /// batch.
    pub async fn get_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Bytes>, IpcError> {
        forward!(async HandleOn, &self.inner, |h| h.get_many(max, timeout))
    }

    /// Takes one message if one is there now. Never waits for one (Redis:
    /// one round trip on async I/O).
    ///
    /// Cancel safety: locally it completes at its first poll. In Redis, as
    /// [`QueueHandle::get`].
    pub async fn try_get(&self) -> Result<Option<Bytes>, IpcError> {
        forward!(redis_async HandleOn, &self.inner, |h| h.try_get())
    }

    /// Marks the oldest message this worker took as done.
    pub fn task_done(&self) -> Result<(), IpcError> {
        forward!(sync HandleOn, &self.inner, |h| h.task_done())
    }
}

impl NamedObject for Queue {
    const KIND: &'static str = "queue";
    type Config = QueueConfig;

    fn create(backend: &Backend, name: &str, config: QueueConfig) -> Result<Arc<Queue>, IpcError> {
        Queue::new(backend, name, config)
    }
}
