//! A queue in Redis: a list, with `JoinableQueue` counting and, in
//! acknowledged mode, an in-flight list per consumer.
//!
//! - `put`: one script checks the capacity and pushes the whole batch
//!   (all or nothing), counts it unfinished, and wakes getters if one is
//!   waiting.
//! - `get`: one script takes up to `max` messages (`LPOP count`), or in
//!   acknowledged mode moves them one by one (`LMOVE`, the non-blocking
//!   `BLMOVE`) to this consumer's in-flight list. The same script first
//!   applies the acknowledgements (`task-done`) gathered since the last
//!   call, so a consumer's steady state is one round trip per batch.
//! - In acknowledged mode `task-done` removes the message from the
//!   in-flight list (`LREM`); a consumer that ends puts what it still holds
//!   back at the head; a host that dies stops renewing its lease, and any
//!   other host's reaper moves its in-flight lists back once the lease has
//!   expired (the visibility timeout).
//! - In the default (at-most-once) mode the in-flight key is a hash of
//!   what this consumer took (`taken`, counted by the take script itself)
//!   and marked done (`done`), both running totals: a consumer that ends
//!   (even mid-take, its reply never read) has the difference counted lost
//!   and taken off `unfinished`, and a total sent twice (its reply lost)
//!   counts once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ::redis::Value;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::redis_depth::DepthWatch;
use super::redis_scripts::{GET, PUT, READY, REAP, REQUEUE, SETTLE};
use super::{QueueConfig, check_max, nothing_taken};
use crate::ipc::IpcError;
use crate::ipc::backend::redis::{Attempt, RedisBackend, check_name, int, unique};
use crate::ipc::fifo::Bounds;

/// A named queue in Redis. Hosts that declare the same name in the same
/// namespace share it.
pub struct RedisQueue {
    backend: Arc<RedisBackend>,
    name: String,
    config: QueueConfig,
    bounds: Bounds,
    list: String,
    unfinished: String,
    closed: String,
    lost: String,
    consumers: String,
    inflight_prefix: String,
    getters: String,
    putters: String,
    channel: String,
    notify: Arc<Notify>,
    reaper: Option<AbortHandle>,
    depth: DepthWatch,
}

impl RedisQueue {
    /// Attaches to (or creates) the queue `name`. Does no I/O: the keys come
    /// into being with the first message.
    pub fn new(
        backend: &Arc<RedisBackend>,
        name: &str,
        config: QueueConfig,
    ) -> Result<Arc<RedisQueue>, IpcError> {
        check_name("queue", name)?;
        let key = |suffix: &str| backend.key("q", name, suffix);
        let channel = key(":ch");
        Ok(Arc::new_cyclic(|me: &Weak<RedisQueue>| {
            let reaper = config.acknowledged.then(|| {
                let me = me.clone();
                let every = (backend.config().lease / 2).max(Duration::from_millis(50));
                backend.spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        let Some(queue) = me.upgrade() else { return };
                        if let Err(e) = queue.reap().await {
                            tracing::debug!("reaping queue `{}`: {e}", queue.name);
                        }
                    }
                })
            });
            RedisQueue {
                notify: backend.channel(&channel),
                backend: backend.clone(),
                name: name.to_string(),
                list: key(""),
                unfinished: key(":unfinished"),
                closed: key(":closed"),
                lost: key(":lost"),
                consumers: key(":consumers"),
                inflight_prefix: key(":inflight:"),
                getters: key(":getters"),
                putters: key(":putters"),
                channel,
                bounds: config.bounds(),
                config,
                reaper,
                depth: DepthWatch::default(),
            }
        }))
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages fit before `put` waits.
    pub fn capacity(&self) -> usize {
        self.bounds.capacity
    }

    /// What one call may put. Redis counts the queue's messages, not their
    /// bytes: `max_bytes` bounds each batch (what this host holds for a
    /// call), and the server's own `maxmemory` bounds the list.
    pub(in crate::ipc) fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Whether messages of dead consumers are delivered again.
    pub fn is_acknowledged(&self) -> bool {
        self.config.acknowledged
    }

    /// Messages waiting now (`LLEN`); 0 if Redis cannot be reached. One
    /// round trip, on async I/O: it holds no thread while it waits.
    pub async fn len(&self) -> usize {
        self.try_len().await.unwrap_or(0)
    }

    /// [`len`](Self::len), `None` if Redis cannot be reached.
    pub(super) async fn try_len(&self) -> Option<usize> {
        ::redis::cmd("LLEN")
            .arg(&self.list)
            .query_async::<usize>(&mut self.backend.conn())
            .await
            .ok()
    }

    pub(super) fn depth_watch(&self) -> &DepthWatch {
        &self.depth
    }

    pub(super) fn spawn_background(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.backend.spawn(work);
    }

    /// Whether no message is waiting (`true` if Redis cannot be reached).
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Messages lost by consumers that ended before `task-done`, across
    /// every host (at-most-once mode); 0 if Redis cannot be reached. One
    /// round trip, on async I/O.
    pub async fn lost(&self) -> u64 {
        let lost = ::redis::cmd("GET")
            .arg(&self.lost)
            .query_async::<Option<u64>>(&mut self.backend.conn())
            .await;
        lost.ok().flatten().unwrap_or(0)
    }

    /// Closes the queue for every host. One round trip, on async I/O.
    pub async fn close(&self) -> Result<(), IpcError> {
        self.backend
            .raise(&self.closed, &self.channel, "closed")
            .await
    }

    /// Waits until every message ever put (by any host) is marked done.
    pub async fn join(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        self.backend
            .wait_until(&self.notify, timeout, || async {
                let left = ::redis::cmd("GET")
                    .arg(&self.unfinished)
                    .query_async::<Option<i64>>(&mut self.backend.conn())
                    .await;
                match left {
                    Ok(left) if left.unwrap_or(0) <= 0 => Attempt::Done(()),
                    Ok(_) => Attempt::Wait,
                    Err(e) => self.backend.failed(e, true),
                }
            })
            .await
    }

    /// Resolves when a `get` would not wait. For pollables.
    pub async fn ready_to_get(&self) {
        self.ready(0).await
    }

    /// Resolves when a `put` of one message would not wait. For pollables.
    pub async fn ready_to_put(&self) {
        self.ready(self.capacity()).await
    }

    async fn ready(&self, capacity: usize) {
        let marker = if capacity == 0 {
            &self.getters
        } else {
            &self.putters
        };
        self.backend
            .wait_forever(&self.notify, || async {
                let answer = READY
                    .key(&self.list)
                    .key(&self.closed)
                    .key(marker)
                    .arg(capacity)
                    .invoke_async::<i64>(&mut self.backend.conn())
                    .await;
                match answer {
                    Ok(1) => Attempt::Done(()),
                    Ok(_) => Attempt::Wait,
                    Err(e) => self.backend.failed(e, true),
                }
            })
            .await
    }

    async fn reap(&self) -> Result<u64, IpcError> {
        REAP.key(&self.consumers)
            .key(&self.list)
            .arg(&self.inflight_prefix)
            .arg(self.backend.lease_key_prefix())
            .arg(&self.channel)
            .invoke_async::<u64>(&mut self.backend.conn())
            .await
            .map_err(|e| self.backend.error(e))
    }

    /// Opens a handle for one worker: one consumer, with its own in-flight
    /// list in acknowledged mode.
    pub fn handle(self: &Arc<Self>) -> RedisQueueHandle {
        let member = format!("{}/{:016x}", self.backend.host_id(), unique());
        RedisQueueHandle(Arc::new(Consumer {
            inflight: format!("{}{member}", self.inflight_prefix),
            member,
            queue: self.clone(),
            taken: Mutex::new(VecDeque::new()),
            pending: Mutex::new(Pending::default()),
            sending: tokio::sync::Mutex::new(()),
            dirty: AtomicBool::new(false),
            flush_scheduled: AtomicBool::new(false),
            took: AtomicBool::new(false),
            dones_marked: AtomicU64::new(0),
        }))
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        if let Some(reaper) = &self.reaper {
            reaper.abort();
        }
    }
}

/// Acknowledgements not yet sent to Redis.
#[derive(Default)]
struct Pending {
    /// Acknowledged mode: the messages marked done.
    acks: Vec<Bytes>,
    /// At-most-once mode: how many were marked done (whether a send is
    /// due; what is sent is `Consumer::dones_marked`).
    dones: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.dones == 0
    }

    /// Puts back what a failed send carried, before anything newer.
    fn restore(&mut self, mut older: Pending) {
        older.acks.append(&mut self.acks);
        self.acks = older.acks;
        self.dones += older.dones;
    }
}

/// One worker's use of a Redis queue (shared with its background flushes).
struct Consumer {
    queue: Arc<RedisQueue>,
    /// `<host>/<id>`: this consumer in the queue's consumer set.
    member: String,
    /// The in-flight list (acknowledged mode).
    inflight: String,
    /// Messages taken and not yet marked done, oldest first (their bytes
    /// only in acknowledged mode).
    taken: Mutex<VecDeque<Option<Bytes>>>,
    pending: Mutex<Pending>,
    /// Orders this consumer's scripts: acknowledgements before the final
    /// requeue.
    sending: tokio::sync::Mutex<()>,
    /// A take failed after it may have run: the in-flight list may hold
    /// messages this consumer does not know of; the next take puts them back.
    dirty: AtomicBool,
    flush_scheduled: AtomicBool,
    /// Took at least once (so it may have an in-flight list to clean up).
    took: AtomicBool,
    /// At-most-once mode: how many messages this consumer ever marked done.
    /// Scripts get this total, not the count since the last send, so a
    /// send repeated after a lost reply applies nothing twice.
    dones_marked: AtomicU64,
}

impl Consumer {
    fn lock_taken(&self) -> std::sync::MutexGuard<'_, VecDeque<Option<Bytes>>> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn restore_pending(&self, older: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore(older);
    }

    /// One take of up to `max` messages (0: only send acknowledgements).
    async fn take(&self, max: usize) -> Attempt<Vec<Bytes>> {
        let q = &*self.queue;
        let _sending = self.sending.lock().await;
        let pending = self.take_pending();
        if max == 0 && pending.is_empty() {
            return Attempt::Done(Vec::new());
        }
        let expected = match self.dirty.swap(false, Ordering::SeqCst) {
            true => self.lock_taken().len() as i64,
            false => -1,
        };
        let acknowledged = q.config.acknowledged;
        if max > 0 {
            self.took.store(true, Ordering::Relaxed);
        }
        let mut call = GET.prepare_invoke();
        call.key(&q.list)
            .key(&self.inflight)
            .key(&q.unfinished)
            .key(&q.closed)
            .key(&q.consumers)
            .key(&q.getters)
            .key(&q.putters)
            .arg(max)
            .arg(u8::from(acknowledged))
            .arg(&q.channel)
            .arg(&self.member)
            .arg(self.dones_marked.load(Ordering::SeqCst))
            .arg(expected);
        for ack in &pending.acks {
            call.arg(ack.as_ref());
        }
        match call.invoke_async::<Value>(&mut q.backend.conn()).await {
            Ok(Value::Array(items)) if items.is_empty() => match max {
                0 => Attempt::Done(Vec::new()),
                _ => Attempt::Wait,
            },
            Ok(Value::Array(items)) => Attempt::Done(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(Bytes::from(b)),
                        _ => None,
                    })
                    .collect(),
            ),
            Ok(other) if int(&other) == Some(-1) => Attempt::Fail(IpcError::Closed),
            Ok(other) => Attempt::Fail(IpcError::Invalid(format!(
                "queue `{}`: unexpected reply {other:?}",
                q.name
            ))),
            Err(e) => {
                // It may have run: acknowledgements are sent again (removing
                // a message twice finds nothing), and in acknowledged mode
                // the next take returns what this one may have moved.
                self.restore_pending(pending);
                if acknowledged && max > 0 {
                    self.dirty.store(true, Ordering::SeqCst);
                }
                q.backend.failed(e, acknowledged)
            }
        }
    }

    /// Sends the acknowledgements gathered so far.
    async fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::SeqCst);
        if let Attempt::Retry(why) | Attempt::Fail(IpcError::Unavailable(why)) = self.take(0).await
        {
            // Kept: the next take or the end of this consumer sends them.
            tracing::debug!("queue `{}`: acknowledgements wait: {why}", self.queue.name);
        }
    }
}

/// One worker's use of a Redis queue. Dropping it settles what the worker
/// took and did not mark done: put back (acknowledged) or counted lost.
pub struct RedisQueueHandle(Arc<Consumer>);

impl RedisQueueHandle {
    /// The queue.
    pub fn queue(&self) -> &Arc<RedisQueue> {
        &self.0.queue
    }

    fn check(&self, messages: &[Vec<u8>]) -> Result<(), IpcError> {
        self.0
            .queue
            .bounds
            .check_batch(messages.iter().map(Vec::len))
    }

    async fn put_once(&self, messages: &[Vec<u8>]) -> Attempt<()> {
        let q = &*self.0.queue;
        let mut call = PUT.prepare_invoke();
        call.key(&q.list)
            .key(&q.unfinished)
            .key(&q.closed)
            .key(&q.putters)
            .key(&q.getters)
            .arg(q.capacity())
            .arg(&q.channel);
        for m in messages {
            call.arg(m.as_slice());
        }
        match call.invoke_async::<i64>(&mut q.backend.conn()).await {
            Ok(1) => Attempt::Done(()),
            Ok(0) => Attempt::Wait,
            Ok(_) => Attempt::Fail(IpcError::Closed),
            // A put whose outcome is unknown is sent again only where a
            // duplicate is allowed (acknowledged mode is at-least-once).
            Err(e) => q.backend.failed(e, q.config.acknowledged),
        }
    }

    /// Puts a batch, all or nothing, waiting until all of it fits.
    pub async fn put_many(
        &self,
        messages: Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), IpcError> {
        self.check(&messages)?;
        let q = &self.0.queue;
        q.backend
            .wait_until(&q.notify, timeout, || self.put_once(&messages))
            .await
    }

    /// Puts one message if there is room now: one round trip, on async
    /// I/O (it holds no thread while it waits).
    ///
    /// Cancel safety: if this future is dropped, the message may have been
    /// put (a script whose reply was not read), counted unfinished.
    pub async fn try_put(&self, message: Vec<u8>) -> Result<bool, IpcError> {
        let messages = [message];
        self.check(&messages)?;
        let put = self.put_once(&messages).await.now()?;
        Ok(put.is_some())
    }

    fn record(&self, items: &[Bytes]) {
        let keep = self.0.queue.config.acknowledged;
        self.0
            .lock_taken()
            .extend(items.iter().map(|b| keep.then(|| b.clone())));
    }

    /// Takes between 1 and `max` messages, waiting for the first.
    pub async fn get_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Bytes>, IpcError> {
        check_max(max)?;
        let q = &self.0.queue;
        let items = q
            .backend
            .wait_until(&q.notify, timeout, || self.0.take(max))
            .await?;
        self.record(&items);
        Ok(items)
    }

    /// Takes one message if one is there now: one round trip, on async I/O
    /// (it holds no thread while it waits).
    ///
    /// Cancel safety: as [`RedisQueueHandle::get_many`].
    pub async fn try_get(&self) -> Result<Option<Bytes>, IpcError> {
        let taken = self.0.take(1).await.now()?.unwrap_or_default();
        self.record(&taken);
        Ok(taken.into_iter().next())
    }

    /// Marks the oldest message this worker took as done. The
    /// acknowledgement goes to Redis with this consumer's next take, or in
    /// the background right after this call, whichever is first.
    pub fn task_done(&self) -> Result<(), IpcError> {
        let Some(message) = self.0.lock_taken().pop_front() else {
            return Err(nothing_taken(&self.0.queue.name));
        };
        {
            let mut pending = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
            match message {
                Some(bytes) => pending.acks.push(bytes),
                None => {
                    pending.dones += 1;
                    self.0.dones_marked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        if !self.0.flush_scheduled.swap(true, Ordering::SeqCst) {
            let consumer = self.0.clone();
            self.0.queue.backend.spawn(async move {
                // Let a take that follows at once carry it instead.
                tokio::task::yield_now().await;
                consumer.flush().await;
            });
        }
        Ok(())
    }
}

impl Drop for RedisQueueHandle {
    fn drop(&mut self) {
        let consumer = self.0.clone();
        // Redis counts what this consumer took and did not mark done.
        consumer.lock_taken().clear();
        let pending = consumer.take_pending();
        let acknowledged = consumer.queue.config.acknowledged;
        let took = consumer.took.load(Ordering::Relaxed);
        if !took && pending.is_empty() {
            return;
        }
        let backend = consumer.queue.backend.clone();
        backend.spawn(async move {
            let q = &*consumer.queue;
            let _sending = consumer.sending.lock().await;
            // Also what a background flush restored after a failure.
            let mut all = consumer.take_pending();
            all.restore(pending);
            // Both scripts may run twice: a retry after a lost reply finds
            // nothing left to settle. Without a retry, a connection that
            // failed just then would leave the messages unfinished (and
            // `join` waiting) for as long as this host lives.
            let started = Instant::now();
            let mut backoff = Duration::from_millis(20);
            loop {
                let result = if acknowledged {
                    let mut call = REQUEUE.prepare_invoke();
                    call.key(&q.list)
                        .key(&consumer.inflight)
                        .key(&q.unfinished)
                        .key(&q.consumers)
                        .arg(&q.channel)
                        .arg(&consumer.member);
                    for ack in &all.acks {
                        call.arg(ack.as_ref());
                    }
                    call.invoke_async::<i64>(&mut q.backend.conn()).await
                } else {
                    SETTLE
                        .key(&q.unfinished)
                        .key(&q.lost)
                        .key(&consumer.inflight)
                        .arg(&q.channel)
                        .arg(consumer.dones_marked.load(Ordering::SeqCst))
                        .invoke_async::<i64>(&mut q.backend.conn())
                        .await
                };
                let Err(e) = result else { return };
                let e = q.backend.error(e);
                let outage = started.elapsed() < q.backend.config().outage_limit;
                if !(outage && matches!(e, IpcError::Unavailable(_))) {
                    // The host's lease still covers the in-flight list:
                    // another host's reaper returns it once this host is gone.
                    tracing::warn!(
                        "corral: queue `{}`: cannot settle a consumer's messages: {e}",
                        q.name
                    );
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        });
    }
}
