//! `make bench`: spawn + join per worker (one at a time, and 1,000 at once),
//! the memory and mappings of an idle worker, and how many idle workers one
//! host holds, beside CPython's multiprocessing measured in the same run.

mod common;

use std::time::{Duration, Instant};

use common::{Row, Series, guest, map_count, print_table, python, rss_bytes, series_at};
use corral::{EngineOptions, ExitStatus, Runtime, RuntimeConfig, Stdio, WorkerSpec};

const RUNS: usize = 5;
const SEQUENTIAL: usize = 1_000;
const BATCH: usize = 1_000;
const IDLE: usize = 10_000;

fn runtime(max_workers: u32) -> Runtime {
    Runtime::new(RuntimeConfig {
        engine: EngineOptions {
            max_workers,
            ..EngineOptions::default()
        },
        cache_dir: Some(common::root().join("target/bench-compile-cache")),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Microseconds per worker to spawn one and join it, one after another.
async fn sequential(rt: &Runtime, program: &corral::Program) -> f64 {
    let start = Instant::now();
    for _ in 0..SEQUENTIAL {
        let w = rt.spawn(program, WorkerSpec::new("noop").stdio(Stdio::Null));
        assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
    }
    start.elapsed().as_secs_f64() * 1e6 / SEQUENTIAL as f64
}

/// Microseconds per worker to spawn `BATCH` at once, then join them all.
async fn batch(rt: &Runtime, program: &corral::Program) -> f64 {
    let start = Instant::now();
    let workers: Vec<_> = (0..BATCH)
        .map(|_| rt.spawn(program, WorkerSpec::new("noop").stdio(Stdio::Null)))
        .collect();
    for w in &workers {
        assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
    }
    start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
}

/// Spawns `n` workers that sleep in a host call, waits until every one is
/// asleep, and returns (RSS bytes per worker, mappings per worker, how many
/// started). Terminates them all before returning.
async fn idle(rt: &Runtime, program: &corral::Program, n: usize) -> (f64, f64, usize) {
    let rss_before = rss_bytes();
    let maps_before = map_count();
    let workers: Vec<_> = (0..n)
        .map(|i| {
            rt.spawn(
                program,
                WorkerSpec::new(format!("idle-{i}")).stdio(Stdio::Capture),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let asleep = workers
            .iter()
            .filter(|w| w.stdout().starts_with(b"sleeping"))
            .count();
        let ended = workers.iter().filter(|w| !w.is_alive()).count();
        if asleep + ended == n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = workers.iter().filter(|w| w.is_alive()).count();
    let rss = (rss_bytes().saturating_sub(rss_before)) as f64 / started.max(1) as f64;
    let maps = (map_count().saturating_sub(maps_before)) as f64 / started.max(1) as f64;
    for w in &workers {
        w.terminate();
    }
    for w in &workers {
        w.join().await;
    }
    (rss, maps, started)
}

fn main() {
    // Measure from inside a Tokio task, as an embedder's code runs: the
    // runtime's `block_on` thread is not a worker thread, and every wake
    // across it costs a futex round trip that no real caller pays.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { tokio::spawn(bench()).await.unwrap() });
}

async fn bench() {
    // `cargo bench --bench lifecycle -- spawn-loop N`: only spawn+join N
    // times, for profiling (perf record, callgrind).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "spawn-loop") {
        let n: usize = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let rt = runtime(64);
        let noop = rt.load(guest("noop")).expect("noop guest");
        let start = Instant::now();
        for _ in 0..n {
            let w = rt.spawn(&noop, WorkerSpec::new("noop").stdio(Stdio::Null));
            assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
        }
        println!(
            "{:.1} µs per spawn+join",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        return;
    }
    println!("spawn + join: {RUNS} runs after a warm-up; CPython baseline runs first");
    let runs = RUNS.to_string();
    let baseline = python(&[], "spawn_join.py", &["--runs", &runs, "--idle", "50"]);
    let baseline_s = python(
        &["-S"],
        "spawn_join.py",
        &["--methods", "spawn", "--runs", "3"],
    );

    let rt = runtime(EngineOptions::default().max_workers);
    let noop = rt.load(guest("noop")).expect("noop guest");
    let sleepy = rt.load(guest("sleepy")).expect("sleepy guest");
    sequential(&rt, &noop).await;
    batch(&rt, &noop).await;
    let mut seq = Vec::new();
    let mut bat = Vec::new();
    for _ in 0..RUNS {
        seq.push(sequential(&rt, &noop).await);
        bat.push(batch(&rt, &noop).await);
    }

    let mut rss = Vec::new();
    let mut maps = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (r, m, n) = idle(&rt, &sleepy, IDLE).await;
        rss.push(r / 1024.0);
        maps.push(m);
        held.push(n as f64);
    }

    let rows = vec![
        Row {
            workload: "spawn+join, one at a time (fork)".into(),
            unit: "µs/worker".into(),
            lower_is_better: true,
            corral: Series::new(seq.clone()),
            cpython: series_at(&baseline, "/fork/sequential_us"),
            note: String::new(),
        },
        Row {
            workload: "spawn+join, 1,000 at once (fork)".into(),
            unit: "µs/worker".into(),
            lower_is_better: true,
            corral: Series::new(bat),
            cpython: series_at(&baseline, "/fork/batch_us"),
            note: "CPython starts 100 at once".into(),
        },
        Row {
            workload: "spawn+join, one at a time (spawn)".into(),
            unit: "µs/worker".into(),
            lower_is_better: true,
            corral: Series::new(seq.clone()),
            cpython: series_at(&baseline, "/spawn/sequential_us"),
            note: String::new(),
        },
        Row {
            workload: "spawn+join, one at a time (spawn, python3 -S)".into(),
            unit: "µs/worker".into(),
            lower_is_better: true,
            corral: Series::new(seq),
            cpython: series_at(&baseline_s, "/spawn/sequential_us"),
            note: String::new(),
        },
        Row {
            workload: format!("idle worker memory ({IDLE} idle)"),
            unit: "KiB RSS/worker".into(),
            lower_is_better: true,
            corral: Series::new(rss),
            cpython: series_at(&baseline, "/idle_pss_kib"),
            note: "CPython: PSS of idle forked children".into(),
        },
        Row {
            workload: "idle worker memory mappings".into(),
            unit: "maps/worker".into(),
            lower_is_better: true,
            corral: Series::new(maps),
            cpython: None,
            note: format!(
                "vm.max_map_count = {}",
                std::fs::read_to_string("/proc/sys/vm/max_map_count")
                    .unwrap_or_default()
                    .trim()
            ),
        },
        Row {
            workload: "concurrent idle workers held".into(),
            unit: "workers".into(),
            lower_is_better: false,
            corral: Series::new(held),
            cpython: None,
            note: String::new(),
        },
    ];
    print_table("Corral vs CPython multiprocessing: worker lifecycle", &rows);
    common::write_results("lifecycle", &rows);
}
