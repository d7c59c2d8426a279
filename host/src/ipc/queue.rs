//! Queue: a named, bounded, many-producer many-consumer FIFO of byte
//! messages with `multiprocessing.JoinableQueue` semantics.
//!
//! Delivery when a consumer ends between `get` and `task_done`:
//! - default (at-most-once): the item counts as done and is lost; `join`
//!   does not wait for it. [`Queue::lost`] counts such items.
//! - acknowledged (at-least-once): the item goes back to the head of the
//!   queue and is delivered again to another consumer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::fifo::Fifo;
use super::{IpcError, with_timeout};

/// How a queue is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// How many messages it holds before `put` waits.
    pub capacity: usize,
    /// The largest message accepted, in bytes; larger ones get `TooLarge`.
    pub max_message: usize,
    /// Redeliver items whose consumer ended before `task_done`.
    pub acknowledged: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 1024,
            max_message: 1 << 20,
            acknowledged: false,
        }
    }
}

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
            fifo: Fifo::new(config.capacity, config.max_message),
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

    /// Whether no message is waiting. Never blocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages fit before `put` waits.
    pub fn capacity(&self) -> usize {
        self.fifo.capacity()
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

    fn add_unfinished(&self, n: u64) {
        self.unfinished.fetch_add(n, Ordering::SeqCst);
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
    pub async fn put(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), IpcError> {
        // Counted before the item is visible, so a fast consumer's task_done
        // never runs ahead of the count.
        self.queue.add_unfinished(1);
        let result = match self.queue.fifo.try_push_one(Bytes::from(message)) {
            Ok(None) => Ok(()),
            // The waiting future is boxed so that this one stays small: the
            // host moves it on every call, and most calls never wait.
            Ok(Some(item)) => Box::pin(with_timeout(timeout, self.queue.fifo.push_one(item))).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.queue.finish(1);
        }
        result
    }

    /// Puts a batch, all or nothing, waiting until all of it fits.
    pub async fn put_many(
        &self,
        messages: Vec<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), IpcError> {
        let n = messages.len() as u64;
        let mut items = Queue::to_bytes(messages);
        self.queue.add_unfinished(n);
        let result = match self.queue.fifo.try_push_all(&mut items) {
            Ok(true) => Ok(()),
            Ok(false) => Box::pin(with_timeout(timeout, self.queue.fifo.push_all(items))).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.queue.finish(n);
        }
        result
    }

    /// Puts one message if there is room now. `Ok(false)`: the queue is full.
    pub fn try_put(&self, message: Vec<u8>) -> Result<bool, IpcError> {
        self.queue.add_unfinished(1);
        let result = self.queue.fifo.try_push_one(Bytes::from(message));
        if !matches!(result, Ok(None)) {
            self.queue.finish(1);
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
        if max == 0 {
            return Err(IpcError::Invalid("get-many needs max >= 1".into()));
        }
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
            return Err(IpcError::Invalid(format!(
                "task-done on queue `{}` without a message taken and not yet done",
                self.queue.name
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> Arc<Queue> {
        Queue::new(
            "q",
            QueueConfig {
                capacity,
                max_message: 8,
                acknowledged: false,
            },
        )
    }

    const SHORT: Option<Duration> = Some(Duration::from_millis(20));

    #[tokio::test]
    async fn fifo_order_and_len() {
        let q = queue(4);
        let h = q.handle();
        for i in 0..3u8 {
            h.put(vec![i], None).await.unwrap();
        }
        assert_eq!(q.len(), 3);
        for i in 0..3u8 {
            assert_eq!(h.get(None).await.unwrap(), vec![i]);
        }
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn full_queue_times_out_and_try_put_says_no() {
        let q = queue(2);
        let h = q.handle();
        h.put(vec![1], None).await.unwrap();
        assert!(h.try_put(vec![2]).unwrap());
        assert!(!h.try_put(vec![3]).unwrap());
        let start = std::time::Instant::now();
        assert_eq!(h.put(vec![3], SHORT).await, Err(IpcError::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn too_large_enqueues_nothing() {
        let q = queue(4);
        let h = q.handle();
        assert_eq!(h.put(vec![0; 9], None).await, Err(IpcError::TooLarge(8)));
        assert_eq!(
            h.put_many(vec![vec![1], vec![0; 9]], None).await,
            Err(IpcError::TooLarge(8))
        );
        assert_eq!(q.len(), 0);
        q.join(SHORT).await.unwrap();
    }

    #[tokio::test]
    async fn put_waits_for_room() {
        let q = queue(1);
        let h = q.handle();
        h.put(vec![1], None).await.unwrap();
        let h2 = q.handle();
        let putter = tokio::spawn(async move { h2.put(vec![2], None).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!putter.is_finished());
        assert_eq!(h.get(None).await.unwrap(), vec![1]);
        putter.await.unwrap().unwrap();
        assert_eq!(h.get(None).await.unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn close_drains_then_reports_closed() {
        let q = queue(4);
        let h = q.handle();
        h.put(vec![1], None).await.unwrap();
        q.close();
        assert_eq!(h.put(vec![2], None).await, Err(IpcError::Closed));
        assert_eq!(h.get(None).await.unwrap(), vec![1]);
        assert_eq!(h.get(None).await, Err(IpcError::Closed));
        assert_eq!(h.try_get(), Err(IpcError::Closed));
    }

    #[tokio::test]
    async fn close_wakes_blocked_getters() {
        let q = queue(4);
        let h = q.handle();
        let getter = tokio::spawn(async move { h.get(None).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        q.close();
        assert_eq!(getter.await.unwrap(), Err(IpcError::Closed));
    }

    #[tokio::test]
    async fn get_many_takes_what_is_there_up_to_max() {
        let q = queue(8);
        let h = q.handle();
        h.put_many((0..5u8).map(|i| vec![i]).collect(), None)
            .await
            .unwrap();
        let got = h.get_many(3, None).await.unwrap();
        assert_eq!(got, vec![vec![0u8], vec![1], vec![2]]);
        let got = h.get_many(10, None).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(h.get_many(10, SHORT).await, Err(IpcError::Timeout));
    }

    #[tokio::test]
    async fn join_waits_for_task_done() {
        let q = queue(8);
        let h = q.handle();
        h.put(vec![1], None).await.unwrap();
        h.put(vec![2], None).await.unwrap();
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        h.get(None).await.unwrap();
        h.task_done().unwrap();
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        h.get(None).await.unwrap();
        h.task_done().unwrap();
        q.join(SHORT).await.unwrap();
        assert!(matches!(h.task_done(), Err(IpcError::Invalid(_))));
    }

    #[tokio::test]
    async fn dead_consumer_loses_items_in_default_mode() {
        let q = queue(8);
        let producer = q.handle();
        producer.put(vec![1], None).await.unwrap();
        let consumer = q.handle();
        consumer.get(None).await.unwrap();
        drop(consumer);
        assert_eq!(q.lost(), 1);
        assert!(q.is_empty());
        q.join(SHORT).await.unwrap();
    }

    #[tokio::test]
    async fn dead_consumer_items_are_redelivered_in_order_when_acknowledged() {
        let q = Queue::new(
            "q",
            QueueConfig {
                capacity: 2,
                max_message: 8,
                acknowledged: true,
            },
        );
        let producer = q.handle();
        producer
            .put_many(vec![vec![1], vec![2]], None)
            .await
            .unwrap();
        let consumer = q.handle();
        assert_eq!(consumer.get(None).await.unwrap(), vec![1]);
        assert_eq!(consumer.get(None).await.unwrap(), vec![2]);
        producer.put(vec![3], None).await.unwrap();
        consumer.task_done().unwrap(); // acknowledges 1
        drop(consumer); // dies holding 2
        let survivor = q.handle();
        assert_eq!(survivor.get(None).await.unwrap(), vec![2]);
        assert_eq!(survivor.get(None).await.unwrap(), vec![3]);
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        survivor.task_done().unwrap();
        survivor.task_done().unwrap();
        q.join(SHORT).await.unwrap();
        assert_eq!(q.lost(), 0);
    }

    #[tokio::test]
    async fn cancelled_get_loses_nothing() {
        let q = queue(4);
        let h = q.handle();
        assert_eq!(h.get(SHORT).await, Err(IpcError::Timeout));
        h.put(vec![7], None).await.unwrap();
        assert_eq!(h.get(SHORT).await.unwrap(), vec![7]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_producers_many_consumers_exact() {
        let q = queue(64);
        let per_producer = 10_000u32;
        let mut producers = Vec::new();
        for p in 0..4u32 {
            let h = q.handle();
            producers.push(tokio::spawn(async move {
                for i in 0..per_producer {
                    let mut msg = p.to_le_bytes().to_vec();
                    msg.extend_from_slice(&i.to_le_bytes());
                    h.put(msg, None).await.unwrap();
                }
            }));
        }
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let h = q.handle();
            consumers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    match h.get_many(16, None).await {
                        Ok(items) => {
                            for m in items {
                                seen.push((
                                    u32::from_le_bytes(m[..4].try_into().unwrap()),
                                    u32::from_le_bytes(m[4..].try_into().unwrap()),
                                ));
                                h.task_done().unwrap();
                            }
                        }
                        Err(IpcError::Closed) => return seen,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        q.join(None).await.unwrap();
        q.close();
        let mut all = Vec::new();
        for c in consumers {
            let seen = c.await.unwrap();
            // Each consumer sees each producer's messages in order.
            for p in 0..4 {
                let mine: Vec<u32> = seen
                    .iter()
                    .filter(|(pp, _)| *pp == p)
                    .map(|(_, i)| *i)
                    .collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
            all.extend(seen);
        }
        all.sort();
        let expected: Vec<(u32, u32)> = (0..4)
            .flat_map(|p| (0..per_producer).map(move |i| (p, i)))
            .collect();
        assert_eq!(all, expected);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        #[derive(Debug, Clone)]
        enum Op {
            TryPut(u8, usize),
            PutMany(Vec<usize>),
            TryGet,
            GetMany(usize),
            TaskDone,
            Close,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (any::<u8>(), 0..12usize).prop_map(|(b, n)| Op::TryPut(b, n)),
                2 => proptest::collection::vec(0..12usize, 0..5).prop_map(Op::PutMany),
                4 => Just(Op::TryGet),
                2 => (0..4usize).prop_map(Op::GetMany),
                2 => Just(Op::TaskDone),
                1 => Just(Op::Close),
            ]
        }

        proptest! {
            /// The queue behaves like a bounded VecDeque with a closed flag
            /// and an unfinished-items counter.
            #[test]
            fn queue_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let (capacity, max) = (4usize, 8usize);
                let q = Queue::new("m", QueueConfig { capacity, max_message: max, acknowledged: false });
                let h = q.handle();
                let zero = Some(Duration::ZERO);
                let mut model: VecDeque<Vec<u8>> = VecDeque::new();
                let (mut closed, mut unfinished, mut taken) = (false, 0u64, 0u64);
                let mut counter = 0u8;
                for op in ops {
                    match op {
                        Op::TryPut(b, n) => {
                            let msg = vec![b; n];
                            let expect = if n > max { Err(IpcError::TooLarge(max as u64)) }
                                else if closed { Err(IpcError::Closed) }
                                else if model.len() == capacity { Ok(false) }
                                else { model.push_back(msg.clone()); unfinished += 1; Ok(true) };
                            prop_assert_eq!(h.try_put(msg), expect);
                        }
                        Op::PutMany(lens) => {
                            let msgs: Vec<Vec<u8>> = lens.iter().map(|&n| { counter = counter.wrapping_add(1); vec![counter; n] }).collect();
                            let expect = if lens.iter().any(|&n| n > max) { Err(IpcError::TooLarge(max as u64)) }
                                else if msgs.len() > capacity { Err(IpcError::Invalid(String::new())) }
                                else if closed { Err(IpcError::Closed) }
                                else if model.len() + msgs.len() > capacity { Err(IpcError::Timeout) }
                                else { unfinished += msgs.len() as u64; model.extend(msgs.clone()); Ok(()) };
                            let got = rt.block_on(h.put_many(msgs, zero));
                            match (&got, &expect) {
                                (Err(IpcError::Invalid(_)), Err(IpcError::Invalid(_))) => {}
                                _ => prop_assert_eq!(got, expect),
                            }
                        }
                        Op::TryGet => {
                            let expect = match model.pop_front() {
                                Some(m) => { taken += 1; Ok(Some(m)) }
                                None if closed => Err(IpcError::Closed),
                                None => Ok(None),
                            };
                            prop_assert_eq!(h.try_get().map(|o| o.map(|b| b.to_vec())), expect);
                        }
                        Op::GetMany(m) => {
                            let expect = if m == 0 { Err(IpcError::Invalid(String::new())) }
                                else if model.is_empty() { if closed { Err(IpcError::Closed) } else { Err(IpcError::Timeout) } }
                                else { let n = m.min(model.len()); taken += n as u64; Ok(model.drain(..n).collect::<Vec<_>>()) };
                            let got = rt.block_on(h.get_many(m, zero)).map(|v| v.into_iter().map(|b| b.to_vec()).collect::<Vec<_>>());
                            match (&got, &expect) {
                                (Err(IpcError::Invalid(_)), Err(IpcError::Invalid(_))) => {}
                                _ => prop_assert_eq!(got, expect),
                            }
                        }
                        Op::TaskDone => {
                            let ok = taken > 0;
                            if ok { taken -= 1; unfinished -= 1; }
                            prop_assert_eq!(h.task_done().is_ok(), ok);
                        }
                        Op::Close => { closed = true; q.close(); }
                    }
                    prop_assert_eq!(q.len(), model.len());
                    let joined = rt.block_on(q.join(zero)).is_ok();
                    prop_assert_eq!(joined, unfinished == 0);
                }
            }
        }
    }

    /// put/get one at a time (their own fast paths), producers and consumers
    /// both waiting (capacity 4): every message arrives
    /// once, and no wakeup is lost (a lost one hangs, and the timeout fails).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_message_calls_through_a_small_queue_lose_no_wakeup() {
        let q = queue(4);
        let producers: Vec<_> = (0..4u8)
            .map(|p| {
                let h = q.handle();
                tokio::spawn(async move {
                    for i in 0..10_000u32 {
                        let mut m = vec![p];
                        m.extend_from_slice(&i.to_le_bytes());
                        h.put(m, None).await.unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let h = q.handle();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        match h.get(None).await {
                            Ok(m) => {
                                got.push(m);
                                h.task_done().unwrap();
                            }
                            Err(IpcError::Closed) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let run = async {
            futures::future::try_join_all(producers).await.unwrap();
            q.join(None).await.unwrap();
            q.close();
            futures::future::try_join_all(consumers).await.unwrap()
        };
        let got = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("a wakeup was lost");
        let mut all: Vec<Vec<u8>> = got.into_iter().flatten().map(|m| m.to_vec()).collect();
        assert_eq!(all.len(), 40_000, "as many messages as were put");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40_000, "every message exactly once");
    }
}
