//! `make bench`: every classic `multiprocessing` workload measured in Corral
//! and in CPython in the same run on the same machine, CPython and Corral
//! runs alternating so each ratio is taken run by run. Prints one table and
//! writes it with the date, machine and versions to `bench/results/`.
//!
//! `cargo bench --bench compare -- [AREA...] [--runs N] [--no-python]
//! [--only TEXT]...`: areas are lifecycle, pool, ipc, fs, net, policy, scale, metrics
//! (default: all);
//! `--only` keeps the rows whose name contains TEXT; `--no-python` measures
//! Corral alone (for profiling); `--small-engine` reserves 64 MiB per
//! memory instead of 4 GiB, so valgrind can run it. `-- spawn-loop N` only spawns and joins N
//! workers one at a time (for perf and callgrind).

mod common;
mod fs;
mod heap;
mod ipc;
mod lifecycle;
mod metrics;
mod net;
mod policy;
mod pool;
mod scale;

use std::sync::atomic::Ordering;
use std::time::Instant;

use common::Bench;

const AREAS: [&str; 8] = [
    "lifecycle",
    "pool",
    "ipc",
    "fs",
    "net",
    "policy",
    "scale",
    "metrics",
];

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "spawn-loop") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let rt = common::runtime(64);
        let noop = rt.load(common::guest("noop")).expect("noop guest");
        let each = lifecycle::one_at_a_time(&rt, &noop, n).await;
        println!("{each:.1} µs per spawn+join");
        return;
    }
    let mut bench = Bench {
        runs: 5,
        python: true,
        only: Vec::new(),
    };
    let mut areas = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => bench.runs = it.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--no-python" => bench.python = false,
            "--small-engine" => common::SMALL_ENGINE.store(true, Ordering::Relaxed),
            "--only" => bench.only.push(it.next().expect("--only TEXT").clone()),
            "--bench" => {} // passed by `cargo bench`
            area if AREAS.contains(&area) => areas.push(area.to_string()),
            other => panic!("unknown argument {other:?}; areas are {AREAS:?}"),
        }
    }
    if areas.is_empty() {
        areas = AREAS.map(String::from).to_vec();
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for area in &areas {
        eprintln!("{area}:");
        rows.extend(match area.as_str() {
            "lifecycle" => lifecycle::rows(&bench).await,
            "pool" => pool::rows(&bench).await,
            "ipc" => ipc::rows(&bench).await,
            "net" => net::rows(&bench).await,
            "policy" => policy::rows(&bench).await,
            "scale" => scale::rows(&bench).await,
            "metrics" => metrics::rows(&bench).await,
            _ => fs::rows(&bench).await,
        });
    }
    common::print_table(&rows, bench.runs);
    println!("\n(bench took {:.0} s)", started.elapsed().as_secs_f64());
    common::write_results("compare", &rows, bench.runs);
}
