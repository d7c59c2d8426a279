//! Pool throughput through the `corral::Pool` library API, against
//! `multiprocessing.Pool`, both with 2 workers and a task that squares an
//! integer (Corral's `square` guest takes and returns decimal text).

use std::time::Instant;

use corral::{Pool, PoolOptions, Program, Runtime, Stdio, TaskResult, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, runtime, secs};

/// Instances, as CPython's Pool(2).
const WORKERS: usize = 2;

fn inputs(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| i.to_string().into_bytes()).collect()
}

/// Panics unless result `i` is `i * i`: a fast wrong answer is no figure.
fn check(results: &[TaskResult], n: usize) {
    assert_eq!(results.len(), n, "missing results");
    for (i, r) in results.iter().enumerate() {
        let out = r
            .as_ref()
            .unwrap_or_else(|e| panic!("task {i} failed: {e}"));
        assert_eq!(out, (i * i).to_string().as_bytes(), "task {i}");
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Chunk(usize),
    DefaultChunks,
    ApplyAsync,
}

/// Tasks per second of one run of `n` tasks on a new pool; the pool is
/// made before the clock starts and joined after it stops, as in pool.py.
async fn run(rt: &Runtime, square: &Program, n: usize, mode: Mode, fresh: bool) -> f64 {
    let options = PoolOptions {
        workers: WORKERS,
        fresh_instance_per_task: fresh,
        worker: WorkerSpec::new("square").stdio(Stdio::Null),
        ..PoolOptions::default()
    };
    let pool = Pool::new(rt, square, options).expect("pool");
    let inputs = inputs(n);
    let start = Instant::now();
    let results = match mode {
        Mode::Chunk(size) => pool.map_chunked(inputs, size).await,
        Mode::DefaultChunks => pool.map(inputs).await,
        Mode::ApplyAsync => {
            let pending: Vec<_> = inputs.into_iter().map(|i| pool.apply_async(i)).collect();
            let mut results = Vec::with_capacity(n);
            for p in pending {
                results.push(p.await);
            }
            results
        }
    };
    let elapsed = secs(start);
    pool.close();
    pool.join().await.expect("join");
    check(&results, n);
    n as f64 / elapsed
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let rt = runtime(16);
    let square = rt.load(guest("square")).expect("square guest");
    let cases = [
        (
            "Pool.map chunksize=1",
            "map1",
            "10000",
            200_000,
            Mode::Chunk(1),
            false,
            Target {
                ratio: Some(10.0),
                absolute: Some(500e3),
            },
            "Corral: 200,000 tasks per run, CPython 10,000",
        ),
        (
            "Pool.map default chunking",
            "map",
            "1000000",
            1_000_000,
            Mode::DefaultChunks,
            false,
            Target {
                ratio: Some(1.0),
                absolute: Some(5e6),
            },
            "1,000,000 tasks per run; Corral runs a chunk in one guest call (task-batch)",
        ),
        (
            "Pool.apply_async",
            "apply_async",
            "5000",
            200_000,
            Mode::ApplyAsync,
            false,
            Target {
                ratio: Some(10.0),
                absolute: Some(300e3),
            },
            "Corral: 200,000 tasks per run, CPython 5,000",
        ),
        (
            "Pool.map chunksize=1, fresh worker per task",
            "fresh",
            "200",
            20_000,
            Mode::Chunk(1),
            true,
            Target {
                ratio: None,
                absolute: Some(50e3),
            },
            "Corral: fresh_instance_per_task, 20,000 tasks; CPython: maxtasksperchild=1, 200 \
             tasks",
        ),
    ];
    let (rt, square) = (&rt, &square);
    let mut rows = Vec::new();
    for (workload, py_mode, py_n, n, mode, fresh, target, note) in cases {
        let row = bench
            .row(
                workload,
                Unit::TasksPerSec,
                target,
                Some((&[], "pool.py", &[py_mode, "--n", py_n])),
                move || run(rt, square, n, mode, fresh),
            )
            .await;
        rows.extend(row.map(|r| r.note(note)));
    }
    rows
}
