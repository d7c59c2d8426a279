//! Worker lifecycle: spawn + join (100 at once, one at a time), restarts
//! after a trap, the memory and mappings of an idle worker, how many idle
//! workers one host holds, and `corral run` against `wasmtime run` as
//! whole processes.

use std::time::{Duration, Instant};

use corral::restart::{Restart, RestartPolicy};
use corral::{EngineOptions, ExitStatus, Program, Runtime, Stdio, WorkerSpec};

use crate::common::{Bench, Python, Row, Target, Unit, map_count, rss_bytes, runtime, secs};

/// Workers per spawn+join round, as in the issue.
const WORKERS: usize = 100;
/// Rounds per Corral run: one round takes ~5 ms, too short to time alone on
/// a noisy machine.
const ROUNDS: usize = 10;
/// CPython's `spawn` start method costs ~60 ms of CPU per process: fewer.
const SPAWN_WORKERS: &str = "20";
/// Idle workers for the memory figure.
const IDLE: usize = 10_000;

/// Microseconds per worker to spawn `WORKERS` at once and join them all.
async fn at_once(rt: &Runtime, noop: &Program) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| rt.spawn(noop, WorkerSpec::new("noop").stdio(Stdio::Null)))
            .collect();
        for w in &workers {
            assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
        }
    }
    secs(start) * 1e6 / (ROUNDS * WORKERS) as f64
}

/// Microseconds per worker to spawn one and join it, one after another.
pub async fn one_at_a_time(rt: &Runtime, noop: &Program, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let w = rt.spawn(noop, WorkerSpec::new("noop").stdio(Stdio::Null));
        assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
    }
    secs(start) * 1e6 / n as f64
}

/// Restarts per run of the restart row.
const RESTARTS: u32 = 1000;

/// Microseconds per restart of a worker that traps on every start but the
/// last (the `comeback` guest), restarted at once (no backoff): from one
/// trap to the next, a fresh instance each time.
async fn restarts(rt: &Runtime, comeback: &Program) -> f64 {
    let policy = RestartPolicy {
        when: Restart::OnFailure,
        max_restarts: RESTARTS,
        within: Duration::from_secs(3600),
        backoff: Duration::ZERO,
        ..RestartPolicy::DEFAULT
    };
    let spec = WorkerSpec::new("comeback")
        .args([RESTARTS.to_string(), "trap".into()])
        .stdio(Stdio::Null)
        .restart(policy);
    let start = Instant::now();
    let report = rt.spawn(comeback, spec).wait_report().await;
    assert_eq!(report.status, ExitStatus::Exited { code: 0 });
    assert_eq!(report.restarts, RESTARTS);
    secs(start) * 1e6 / f64::from(RESTARTS)
}

/// The host's RSS and mapping count before any idle worker ran: pooled
/// slots keep their pages after a worker ends, so what a later run costs
/// is measured from here, not from the end of the previous run.
#[derive(Clone, Copy)]
struct Baseline {
    rss: u64,
    maps: usize,
}

impl Baseline {
    fn now() -> Baseline {
        Baseline {
            rss: rss_bytes(),
            maps: map_count(),
        }
    }
}

/// Spawns `n` workers that sleep in a host call, waits until every one is
/// asleep (or has ended), and returns (RSS bytes per worker, mappings per
/// worker, how many are asleep), both over `base`. Terminates them all
/// before returning.
async fn idle(rt: &Runtime, sleepy: &Program, n: usize, base: Baseline) -> (f64, f64, usize) {
    let workers: Vec<_> = (0..n)
        .map(|i| {
            rt.spawn(
                sleepy,
                WorkerSpec::new(format!("idle-{i}")).stdio(Stdio::Capture),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let asleep = loop {
        let asleep = workers
            .iter()
            .filter(|w| w.is_alive() && w.stdout().starts_with(b"sleeping"))
            .count();
        let ended = workers.iter().filter(|w| !w.is_alive()).count();
        if asleep + ended == n || Instant::now() > deadline {
            break asleep;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let per = asleep.max(1) as f64;
    let rss = rss_bytes().saturating_sub(base.rss) as f64 / per;
    let maps = map_count().saturating_sub(base.maps) as f64 / per;
    if asleep < n
        && let Some(w) = workers.iter().find(|w| !w.is_alive())
    {
        eprintln!(
            "  ({} of {n} asleep; first failure: {})",
            asleep,
            w.join().await
        );
    }
    for w in &workers {
        w.terminate();
    }
    for w in &workers {
        w.join().await;
    }
    (rss, maps, asleep)
}

/// Processes per run of the `corral run` vs `wasmtime run` row.
const PROCESSES: usize = 50;
/// The row's name.
const VS_WASMTIME: &str = "corral run vs wasmtime run (whole process)";

/// Microseconds per process to run `program` `PROCESSES` times, one after
/// another, as a script would: `command` then the file, output discarded.
fn whole_processes(command: &[&str], program: &std::path::Path) -> f64 {
    let start = Instant::now();
    for _ in 0..PROCESSES {
        let status = std::process::Command::new(command[0])
            .args(&command[1..])
            .arg(program)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", command[0]));
        assert!(
            status.success(),
            "{command:?} {}: {status}",
            program.display()
        );
    }
    secs(start) * 1e6 / PROCESSES as f64
}

/// The same small program run as whole processes by `corral run` and by
/// `wasmtime run` (in the CPython column), run by run; `None`, with a note,
/// where `wasmtime` is not on PATH.
fn vs_wasmtime(bench: &Bench) -> Option<Row> {
    if !bench.wants(VS_WASMTIME) {
        return None;
    }
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("wasmtime").is_file())
    });
    if !on_path {
        eprintln!(
            "  {VS_WASMTIME}: skipped, no `wasmtime` on PATH \
             (cargo install wasmtime-cli --version 48.0.8 --locked)"
        );
        return None;
    }
    let noop = crate::common::guest("noop");
    let corral = [env!("CARGO_BIN_EXE_corral"), "run"];
    let wasmtime = ["wasmtime", "run"];
    let mut pairs = Vec::new();
    // The first run of each warms the compile caches; it is not counted.
    for run in 0..=bench.runs {
        let w = whole_processes(&wasmtime, &noop);
        let c = whole_processes(&corral, &noop);
        if run > 0 {
            pairs.push((c, Some(w)));
        }
    }
    let row = Row::paired(
        VS_WASMTIME,
        Unit::MicrosPerWorker,
        &pairs,
        true,
        Target {
            ratio: Some(1.0),
            absolute: None,
        },
    )
    .note(format!(
        "the baseline column is `wasmtime run` here, not CPython: {PROCESSES} processes of \
         the noop component one after another per run, each tool with its own compile cache"
    ));
    eprintln!(
        "  {VS_WASMTIME}: wasmtime {:.0} | corral {:.0} µs/process",
        row.cpython.as_ref().map_or(f64::NAN, |s| s.median()),
        row.corral.median()
    );
    Some(row)
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(vs_wasmtime(bench));
    {
        let rt = runtime(EngineOptions::default().max_workers);
        let noop = rt.load(crate::common::guest("noop")).expect("noop guest");
        let sleepy = rt
            .load(crate::common::guest("sleepy"))
            .expect("sleepy guest");
        let n = WORKERS.to_string();
        let fork_target = Target {
            ratio: Some(50.0),
            absolute: None,
        };
        // (workload, interpreter flags, spawn_join.py workload, its args, target)
        type Case<'a> = (&'a str, &'a [&'a str], &'a str, &'a [&'a str], Target);
        let cases: [Case; 4] = [
            (
                "spawn+join 100 at once (fork)",
                &[],
                "batch",
                &["--method", "fork", "--n", &n],
                fork_target,
            ),
            (
                "spawn+join one at a time (fork)",
                &[],
                "sequential",
                &["--method", "fork", "--n", &n],
                fork_target,
            ),
            (
                "spawn+join 20 at once (spawn)",
                &[],
                "batch",
                &["--method", "spawn", "--n", SPAWN_WORKERS],
                Target::default(),
            ),
            (
                "spawn+join 20 at once (spawn, python3 -S)",
                &["-S"],
                "batch",
                &["--method", "spawn", "--n", SPAWN_WORKERS],
                Target::default(),
            ),
        ];
        let (rtr, noopr) = (&rt, &noop);
        for (workload, flags, mode, args, target) in cases {
            let args: Vec<&str> = [mode].iter().chain(args).copied().collect();
            let sequential = mode == "sequential";
            let row = bench
                .row(
                    workload,
                    Unit::MicrosPerWorker,
                    target,
                    Some((flags, "spawn_join.py", &args)),
                    move || async move {
                        if sequential {
                            one_at_a_time(rtr, noopr, ROUNDS * WORKERS).await
                        } else {
                            at_once(rtr, noopr).await
                        }
                    },
                )
                .await;
            rows.extend(row.map(|r| {
                r.note(if sequential {
                    "Corral: 1,000 one after another per run"
                } else {
                    "Corral: 10 rounds of 100 workers per run, CPython one round"
                })
            }));
        }

        let comeback = rt
            .load(crate::common::guest("comeback"))
            .expect("comeback guest");
        let n = RESTARTS.to_string();
        let row = bench
            .row(
                "restart after a failure (no backoff)",
                Unit::MicrosPerRestart,
                Target {
                    ratio: None,
                    absolute: Some(100.0),
                },
                Some((
                    &[],
                    "spawn_join.py",
                    &["restart", "--method", "fork", "--n", &n],
                )),
                || restarts(&rt, &comeback),
            )
            .await;
        rows.extend(row.map(|r| {
            r.note(
                "Corral: a worker trapping 1,000 times under restart = on-failure, backoff 0; \
                 CPython: a supervisor loop starting a dead Process again (fork), 1,000 times",
            )
        }));

        let memory = format!("idle worker memory ({IDLE} idle)");
        if bench.wants(&memory) || bench.wants("mappings") {
            let mut python = bench
                .python
                .then(|| Python::start(&[], "spawn_join.py", &["idle", "--n", "50"]))
                .flatten();
            let ran = python.is_some();
            let (mut memory_pairs, mut maps) = (Vec::new(), Vec::new());
            let base = Baseline::now();
            // Three runs: each holds 10,000 workers for a few seconds.
            for _ in 0..3 {
                let p = python.as_mut().and_then(Python::run);
                let (rss, m, _) = idle(&rt, &sleepy, IDLE, base).await;
                memory_pairs.push((rss / 1024.0, p));
                maps.push(m);
            }
            let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .unwrap_or_default()
                .trim()
                .to_string();
            rows.push(
                Row::paired(
                    &memory,
                    Unit::KibPerWorker,
                    &memory_pairs,
                    ran,
                    Target::default(),
                )
                .note(
                    "growth of the host's RSS over 10,000 sleeping workers; CPython: PSS of \
                     50 idle forked children; 3 runs",
                ),
            );
            rows.push(
                Row::corral_only(
                    "idle worker memory mappings",
                    Unit::MapsPerWorker,
                    maps,
                    Target::default(),
                )
                .note(format!(
                    "new mappings per idle worker; vm.max_map_count = {max_map_count}"
                )),
            );
        }
    }
    // The probe's engine reserves address space for all its slots: it is
    // built only once the runtime above has been dropped. More slots do not
    // help: every slot costs memory mappings, and vm.max_map_count bounds
    // them (see the row's note).
    let probes = [(
        "most concurrent idle workers",
        EngineOptions::default(),
        "every slot of the default engine (12,000; 4 GiB reservation each)",
    )];
    for (held, options, what) in probes {
        if !bench.wants(held) {
            continue;
        }
        let slots = options.max_workers;
        let rt = crate::common::runtime_with(options);
        let sleepy = rt
            .load(crate::common::guest("sleepy"))
            .expect("sleepy guest");
        let (_, maps, asleep) = idle(&rt, &sleepy, slots as usize, Baseline::now()).await;
        rows.push(
            Row::corral_only(
                held,
                Unit::Workers,
                vec![asleep as f64],
                Target {
                    ratio: None,
                    absolute: Some(10_000.0),
                },
            )
            .note(format!(
                "one run asking for {what}; {maps:.1} new mappings per worker"
            )),
        );
    }
    rows
}
