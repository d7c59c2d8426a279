//! The local queue's tests: order, bounds, closing, `join`, what happens to
//! a dead consumer's messages, a model check and many tasks at once.

use std::sync::Arc;
use std::time::Duration;

use super::QueueConfig;
use super::local::Queue;
use crate::ipc::IpcError;

fn queue(capacity: usize) -> Arc<Queue> {
    Queue::new(
        "q",
        QueueConfig {
            capacity,
            max_message: 8,
            max_bytes: 1 << 20,
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
            max_bytes: 1 << 20,
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

/// A producer killed while it waits for room (its future dropped) must not
/// leave its message counted unfinished: `join` would wait forever.
#[tokio::test]
async fn producers_killed_while_blocked_in_put_leave_join_returning() {
    let q = queue(1);
    let consumer = q.handle();
    q.handle().put(vec![0], None).await.unwrap();
    let blocked_put = tokio::spawn({
        let q = q.clone();
        async move { q.handle().put(vec![1], None).await }
    });
    let blocked_batch = tokio::spawn({
        let q = q.clone();
        async move { q.handle().put_many(vec![vec![2]], None).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!blocked_put.is_finished() && !blocked_batch.is_finished());
    blocked_put.abort();
    blocked_batch.abort();
    assert!(blocked_put.await.unwrap_err().is_cancelled());
    assert!(blocked_batch.await.unwrap_err().is_cancelled());
    assert_eq!(consumer.get(None).await.unwrap(), vec![0]);
    consumer.task_done().unwrap();
    assert_eq!(consumer.try_get(), Ok(None));
    assert_eq!(q.join(Some(Duration::from_secs(5))).await, Ok(()));
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
            let q = Queue::new("m", QueueConfig { capacity, max_message: max, max_bytes: 1 << 20, acknowledged: false });
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
