//! Pools of real task guests: ordering, chunking, failure isolation,
//! recycling, timeouts, retries, terminate, streaming.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{load, runtime_with};
use corral::{Pool, PoolError, PoolOptions, Stdio, TaskError, WorkerSpec};
use futures::StreamExt;

fn options(workers: usize) -> PoolOptions {
    PoolOptions {
        workers,
        worker: WorkerSpec::new("task").stdio(Stdio::Capture),
        ..PoolOptions::default()
    }
}

fn numbers(n: u64) -> Vec<Vec<u8>> {
    (1..=n).map(|i| i.to_string().into_bytes()).collect()
}

fn texts(results: Vec<corral::TaskResult>) -> Vec<String> {
    results
        .into_iter()
        .map(|r| String::from_utf8(r.expect("task ok")).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn map_keeps_input_order_at_every_chunk_size() {
    let (rt, _) = runtime_with(16);
    let pool = Pool::new(&rt, &load(&rt, "square"), options(4)).unwrap();
    let expected: Vec<String> = (1..=100u64).map(|i| (i * i).to_string()).collect();
    assert_eq!(texts(pool.map(numbers(100)).await), expected);
    for chunk in [1, 7, 100, 1000] {
        assert_eq!(
            texts(pool.map_chunked(numbers(100), chunk).await),
            expected,
            "chunk {chunk}"
        );
    }
    assert_eq!(pool.default_chunk(100), 7);
    assert!(
        pool.map(Vec::new()).await.is_empty(),
        "empty input, empty output"
    );
    assert_eq!(pool.stats().succeeded, 500);
}

/// A task that always traps: past `max_replacements` replacements the pool
/// gives up, and every later task fails at once with the reason, instead
/// of starting an instance per task forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_always_traps_fails_the_pool_at_its_intensity() {
    let (rt, _) = runtime_with(8);
    let pool = Pool::new(
        &rt,
        &load(&rt, "flaky"),
        PoolOptions {
            max_replacements: 3,
            ..options(1)
        },
    )
    .unwrap();
    let inputs = vec![b"trap".to_vec(); 20];
    let results = pool.map_chunked(inputs, 1).await;
    let trapped = results
        .iter()
        .filter(|r| matches!(r, Err(TaskError::Trapped { .. })))
        .count();
    assert_eq!(
        trapped, 4,
        "three replacements, then the fourth trap gives up"
    );
    for result in &results[4..] {
        match result {
            Err(TaskError::GaveUp(why)) => assert!(
                why.starts_with("more than 3 task instances replaced after failures within 1m"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pool.stats().instances_started, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_task_fails_alone_and_its_instance_is_replaced() {
    let (rt, _) = runtime_with(8);
    let pool = Pool::new(&rt, &load(&rt, "flaky"), options(1)).unwrap();
    let inputs: Vec<Vec<u8>> = ["a", "trap", "b", "fail", "c"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    for chunk in [1, 5] {
        let results = pool.map_chunked(inputs.clone(), chunk).await;
        assert_eq!(results[0], Ok(b"a".to_vec()));
        match &results[1] {
            Err(TaskError::Trapped { message, backtrace }) => {
                assert_eq!(message, "wasm `unreachable` instruction executed");
                assert_eq!(backtrace[0].function.as_deref(), Some("flaky::flaky"));
            }
            other => panic!("chunk {chunk}: {other:?}"),
        }
        assert_eq!(results[2], Ok(b"b".to_vec()));
        assert_eq!(results[3], Err(TaskError::Failed("asked to fail".into())));
        assert_eq!(results[4], Ok(b"c".to_vec()));
    }
    let stats = pool.stats();
    assert_eq!((stats.succeeded, stats.failed), (6, 4));
    assert!(
        stats.instances_started >= 3,
        "replaced after each trap: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_reused_recycled_or_fresh_as_asked() {
    let (rt, _) = runtime_with(8);
    let counter = load(&rt, "counter");
    let seven = vec![Vec::new(); 7];
    let reused = Pool::new(&rt, &counter, options(1)).unwrap();
    assert_eq!(
        texts(reused.map_chunked(seven.clone(), 1).await),
        ["1", "2", "3", "4", "5", "6", "7"]
    );
    let recycled = Pool::new(
        &rt,
        &counter,
        PoolOptions {
            max_tasks_per_worker: Some(3),
            ..options(1)
        },
    )
    .unwrap();
    assert_eq!(
        texts(recycled.map_chunked(seven.clone(), 1).await),
        ["1", "2", "3", "1", "2", "3", "1"]
    );
    assert_eq!(recycled.stats().instances_started, 3);
    let fresh = Pool::new(
        &rt,
        &counter,
        PoolOptions {
            fresh_instance_per_task: true,
            ..options(1)
        },
    )
    .unwrap();
    assert_eq!(texts(fresh.map_chunked(seven, 3).await), ["1"; 7]);
    assert_eq!(fresh.stats().instances_started, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_fails_a_runaway_task_and_retries_rerun_traps() {
    let (rt, _) = runtime_with(8);
    let flaky = load(&rt, "flaky");
    let pool = Pool::new(
        &rt,
        &flaky,
        PoolOptions {
            task_timeout: Some(Duration::from_millis(100)),
            ..options(1)
        },
    )
    .unwrap();
    let started = Instant::now();
    let results = pool
        .map_chunked(vec![b"spin".to_vec(), b"after".to_vec()], 1)
        .await;
    assert_eq!(
        results[0],
        Err(TaskError::Timeout(Duration::from_millis(100)))
    );
    assert_eq!(results[1], Ok(b"after".to_vec()));
    assert!(started.elapsed() < Duration::from_secs(2));
    let retrying = Pool::new(
        &rt,
        &flaky,
        PoolOptions {
            retries: 2,
            ..options(1)
        },
    )
    .unwrap();
    assert!(matches!(
        retrying.apply_async(b"trap".to_vec()).await,
        Err(TaskError::Trapped { .. })
    ));
    assert_eq!(
        retrying.stats().instances_started,
        3,
        "tried three times, each on a fresh instance"
    );
}

/// Instances are metered as workers are: their CPU limit ends a runaway
/// task (that one only), and the runtime's snapshot counts the pool's CPU.
#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_limit_ends_a_runaway_task_and_snapshots_count_the_time() {
    let (rt, _) = runtime_with(8);
    let flaky = load(&rt, "flaky");
    let mut opts = options(1);
    opts.worker.limits.cpu_time = Some(Duration::from_millis(200));
    let pool = Pool::new(&rt, &flaky, opts).unwrap();
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        pool.map_chunked(vec![b"spin".to_vec(), b"after".to_vec()], 1),
    )
    .await
    .expect("the CPU limit never ended the spinning task");
    assert!(
        matches!(&results[0], Err(TaskError::Killed(why)) if why.contains("CPU time limit")),
        "{results:?}"
    );
    assert_eq!(results[1], Ok(b"after".to_vec()));
    assert_eq!(pool.stats().instances_started, 2, "replaced after the kill");
    let snapshot = rt.snapshot();
    let seen = &snapshot.pools[0];
    assert!(
        seen.cpu_ns >= 200_000_000 && seen.cpu_ns < 30_000_000_000,
        "{} ns of CPU",
        seen.cpu_ns
    );
    assert!(seen.memory_bytes > 0, "the live instance holds memory");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_in_the_middle_of_a_map_fails_the_rest() {
    let (rt, _) = runtime_with(8);
    let pool = Arc::new(Pool::new(&rt, &load(&rt, "slow"), options(2)).unwrap());
    let inputs = vec![b"300".to_vec(); 10];
    let mapping = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.map_chunked(inputs, 1).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let asked = Instant::now();
    pool.terminate();
    let results = mapping.await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(results.len(), 10);
    assert!(
        results.iter().all(|r| *r == Err(TaskError::Terminated)),
        "{results:?}"
    );
    pool.join().await.unwrap();
    assert_eq!(
        pool.apply_async(b"1".to_vec()).await,
        Err(TaskError::Closed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn close_lets_submitted_tasks_finish_and_join_waits() {
    let (rt, _) = runtime_with(8);
    let pool = Pool::new(&rt, &load(&rt, "slow"), options(2)).unwrap();
    assert!(matches!(pool.join().await, Err(PoolError::StillOpen)));
    let pending: Vec<_> = (0..4).map(|_| pool.apply_async(b"30".to_vec())).collect();
    pool.close();
    pool.join().await.unwrap();
    for p in pending {
        assert_eq!(p.await, Ok(b"30".to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_streams_a_large_input_with_bounded_memory() {
    let (rt, _) = runtime_with(8);
    let pool = Pool::new(&rt, &load(&rt, "square"), options(2)).unwrap();
    const N: u64 = 200_000;
    const CHUNK: usize = 16;
    let pulled = Arc::new(AtomicUsize::new(0));
    let inputs = {
        let pulled = pulled.clone();
        (1..=N).map(move |i| {
            pulled.fetch_add(1, Ordering::Relaxed);
            i.to_string().into_bytes()
        })
    };
    let mut stream = Box::pin(pool.imap(inputs, CHUNK));
    let mut received = 0u64;
    let mut most_ahead = 0usize;
    while let Some(result) = stream.next().await {
        received += 1;
        let value: u64 = String::from_utf8(result.unwrap()).unwrap().parse().unwrap();
        assert_eq!(value, received * received, "in order");
        most_ahead = most_ahead.max(pulled.load(Ordering::Relaxed) - received as usize);
    }
    assert_eq!(received, N);
    // Inputs are read only a window ahead of the results: 2 chunks per
    // instance in flight, plus the chunk being formed.
    assert!(
        most_ahead <= (2 * 2 + 1) * CHUNK,
        "read {most_ahead} inputs ahead"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_unordered_gives_every_index_once() {
    let (rt, _) = runtime_with(8);
    let pool = Pool::new(&rt, &load(&rt, "slow"), options(3)).unwrap();
    // Later inputs are faster, so they come back first.
    let inputs: Vec<Vec<u8>> = [60, 40, 20, 1, 1, 1]
        .iter()
        .map(|ms: &u32| ms.to_string().into_bytes())
        .collect();
    let got: Vec<(usize, Vec<u8>)> = pool
        .imap_unordered(inputs.clone(), 1)
        .map(|(i, r)| (i, r.unwrap()))
        .collect()
        .await;
    let mut indexes: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
    assert_ne!(indexes, [0, 1, 2, 3, 4, 5], "finished out of order");
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    for (i, output) in got {
        assert_eq!(output, inputs[i]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_component_is_not_a_pool_task() {
    let (rt, _) = runtime_with(8);
    let err = Pool::new(&rt, &load(&rt, "hello"), options(1))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("does not export corral:worker/task"),
        "{err}"
    );
    let square = load(&rt, "square");
    assert!(square.is_task() && !square.is_command());
    let status = rt.spawn(&square, WorkerSpec::new("sq")).join().await;
    assert!(status.summary().contains("it is a pool task"), "{status}");
}
