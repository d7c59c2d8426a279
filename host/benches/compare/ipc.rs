//! Queues, pipes and locks between workers (the `bench-ipc` guest), against
//! `multiprocessing.Queue`, `Pipe` and `Lock` between processes.

use std::time::Instant;

use corral::ipc::{PipeConfig, QueueConfig};
use corral::{ExitStatus, Program, Run, Runtime, Stdio, Worker, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, runtime, secs};

const MIB: usize = 1 << 20;

fn spawn(rt: &Runtime, run: &Run, ipc: &Program, name: &str, args: &[String]) -> Worker {
    rt.spawn(
        ipc,
        WorkerSpec::new(name)
            .args(args.iter().cloned())
            .stdio(Stdio::Capture)
            .run(run),
    )
}

/// Joins a worker, panicking unless it exited 0; returns its stdout.
pub(crate) async fn finish(w: &Worker) -> String {
    let status = w.join().await;
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}: {}",
        w.name(),
        String::from_utf8_lossy(&w.stderr())
    );
    String::from_utf8_lossy(&w.stdout()).into_owned()
}

/// The number after `key` in a guest's report line `key NUMBER...`.
pub(crate) fn field(out: &str, key: &str, index: usize) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().nth(index))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` figure in {out:?}"))
}

fn args(parts: &[&dyn ToString]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// A queue workload: P producers put `n` messages of `size` bytes in all
/// (`batch` per put-many), C consumers take them until the host closes the
/// queue after the producers end. Checks count and sequence sum; returns
/// messages per second, from the first spawn to the last join.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn queue(
    rt: &Runtime,
    ipc: &Program,
    producers: usize,
    consumers: usize,
    n: usize,
    size: usize,
    batch: usize,
    capacity: usize,
) -> f64 {
    let run = Run::new();
    let q = run
        .objects()
        .declare_queue(
            "q",
            QueueConfig {
                capacity,
                max_message: size.max(MIB),
                max_bytes: capacity * size.max(MIB),
                acknowledged: false,
            },
        )
        .unwrap();
    let share = n / producers;
    let start = Instant::now();
    let takers: Vec<_> = (0..consumers)
        .map(|i| {
            spawn(
                rt,
                &run,
                ipc,
                &format!("get{i}"),
                &args(&[&"get", &"q", &size, &batch]),
            )
        })
        .collect();
    let makers: Vec<_> = (0..producers)
        .map(|i| {
            let a = args(&[&"put", &"q", &(i * share), &share, &size, &batch]);
            spawn(rt, &run, ipc, &format!("put{i}"), &a)
        })
        .collect();
    for w in &makers {
        finish(w).await;
    }
    q.close().await;
    let (mut count, mut sum) = (0u64, 0u64);
    for w in &takers {
        let out = finish(w).await;
        count += field(&out, "got", 0) as u64;
        sum = sum.wrapping_add(
            out.split_whitespace()
                .nth(2)
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let elapsed = secs(start);
    let total = (share * producers) as u64;
    assert_eq!(count, total, "messages lost or duplicated");
    assert_eq!(sum, total * (total - 1) / 2, "checksum");
    total as f64 / elapsed
}

/// Microseconds per round trip of a `size`-byte message, timed by the
/// pinging guest after one untimed exchange.
pub(crate) async fn round_trip(rt: &Runtime, ipc: &Program, n: usize, size: usize) -> f64 {
    let run = Run::new();
    run.objects()
        .declare_pipe("p", PipeConfig::default())
        .unwrap();
    let echo = spawn(rt, &run, ipc, "echo", &args(&[&"echo", &"p"]));
    let ping = spawn(rt, &run, ipc, "ping", &args(&[&"ping", &"p", &n, &size]));
    let out = finish(&ping).await;
    finish(&echo).await;
    field(&out, "rtt", 0) / 1e3
}

/// MiB per second from one worker to another over a pipe, `n` messages of
/// `size` bytes, from the first spawn to the last join; every message checked.
async fn bandwidth(rt: &Runtime, ipc: &Program, n: usize, size: usize) -> f64 {
    let run = Run::new();
    run.objects()
        .declare_pipe("p", PipeConfig::default())
        .unwrap();
    let start = Instant::now();
    let recv = spawn(rt, &run, ipc, "recv", &args(&[&"recv", &"p", &size]));
    let send = spawn(rt, &run, ipc, "send", &args(&[&"send", &"p", &n, &size]));
    finish(&send).await;
    let out = finish(&recv).await;
    let elapsed = secs(start);
    assert_eq!(field(&out, "got", 0) as usize, n, "messages lost");
    assert_eq!(field(&out, "got", 1) as usize, n * (n - 1) / 2, "checksum");
    (n * size) as f64 / elapsed / MIB as f64
}

/// Nanoseconds per bare host call (`guard.fencing-token`), timed by the guest.
async fn call(rt: &Runtime, ipc: &Program, n: usize) -> f64 {
    let run = Run::new();
    run.objects().declare_lock("l", false).unwrap();
    let worker = spawn(rt, &run, ipc, "call", &args(&[&"call", &"l", &n]));
    field(&finish(&worker).await, "call", 0)
}

/// Nanoseconds per acquire + release: timed by the guest when one worker
/// runs alone, over the whole run (first spawn to last join) when several
/// contend.
async fn lock(rt: &Runtime, ipc: &Program, workers: usize, n: usize) -> f64 {
    let run = Run::new();
    run.objects().declare_lock("l", false).unwrap();
    let start = Instant::now();
    let all: Vec<_> = (0..workers)
        .map(|i| {
            spawn(
                rt,
                &run,
                ipc,
                &format!("lock{i}"),
                &args(&[&"lock", &"l", &n]),
            )
        })
        .collect();
    let mut outs = Vec::new();
    for w in &all {
        outs.push(finish(w).await);
    }
    if workers == 1 {
        field(&outs[0], "lock", 0)
    } else {
        secs(start) * 1e9 / (workers * n) as f64
    }
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let rt = runtime(64);
    let ipc = rt.load(guest("bench-ipc")).expect("bench-ipc guest");
    let (rt, ipc) = (&rt, &ipc);
    let mut rows = Vec::new();
    let ratio = |r: f64| Some(r);
    // Queues: (workload, P, C, Corral n, CPython n, size, batch, capacity,
    // target, note).
    let queues = [
        (
            "Queue 1→1, 64 B",
            1,
            1,
            500_000,
            "50000",
            64,
            1,
            1024,
            Target {
                ratio: ratio(10.0),
                absolute: Some(1e6),
            },
            "Corral: 500,000 messages per run, CPython 50,000",
        ),
        (
            "Queue 1→1, 64 B, batches of 64",
            1,
            1,
            2_000_000,
            "200000",
            64,
            64,
            1024,
            Target {
                ratio: None,
                absolute: Some(5e6),
            },
            "Corral: put-many/get-many of 64, 2,000,000 messages; CPython: a list of 64 \
             messages per put, 200,000 messages",
        ),
        (
            "Queue 4→4, 64 B",
            4,
            4,
            500_000,
            "50000",
            64,
            1,
            1024,
            Target {
                ratio: ratio(10.0),
                absolute: None,
            },
            "Corral: 500,000 messages per run, CPython 50,000",
        ),
        (
            "Queue 1→1, 1 MiB",
            1,
            1,
            400,
            "200",
            MIB,
            1,
            64,
            Target::default(),
            "MiB/s = messages/s; Corral: 400 messages, queue capacity 64; CPython: 200, unbounded",
        ),
    ];
    for (workload, p, c, n, py_n, size, batch, capacity, target, note) in queues {
        let py_args = args(&[
            &"q",
            &"--n",
            &py_n,
            &"--size",
            &size,
            &"--producers",
            &p,
            &"--consumers",
            &c,
            &"--batch",
            &batch,
        ]);
        let py_args: Vec<&str> = py_args.iter().map(String::as_str).collect();
        let unit = if size == MIB {
            Unit::MibPerSec
        } else {
            Unit::MsgsPerSec
        };
        let row = bench
            .row(
                workload,
                unit,
                target,
                Some((&[], "queues.py", &py_args)),
                move || queue(rt, ipc, p, c, n, size, batch, capacity),
            )
            .await;
        rows.extend(row.map(|r| r.note(note)));
    }

    let row = bench
        .row(
            "Pipe round trip, 64 B",
            Unit::MicrosPerRoundTrip,
            Target {
                ratio: ratio(4.0),
                absolute: Some(2.0),
            },
            Some((&[], "pipes.py", &["rtt", "--n", "20000", "--size", "64"])),
            move || round_trip(rt, ipc, 100_000, 64),
        )
        .await;
    rows.extend(
        row.map(|r| r.note("timed in the loop; Corral 100,000 round trips, CPython 20,000")),
    );
    let mib = MIB.to_string();
    let row = bench
        .row(
            "Pipe one-way, 1 MiB messages",
            Unit::MibPerSec,
            Target {
                ratio: ratio(1.0),
                absolute: None,
            },
            Some((&[], "pipes.py", &["bw", "--n", "300", "--size", &mib])),
            move || bandwidth(rt, ipc, 300, MIB),
        )
        .await;
    rows.extend(row.map(|r| r.note("300 messages per run, from the first start to the last join")));

    let row = bench
        .row(
            "Lock acquire+release, uncontended",
            Unit::NanosPerOp,
            Target {
                ratio: None,
                absolute: Some(300.0),
            },
            Some((&[], "locks.py", &["uncontended", "--n", "1000000"])),
            move || lock(rt, ipc, 1, 1_000_000),
        )
        .await;
    rows.extend(row.map(|r| r.note("timed in the loop, 1,000,000 per run")));
    let row = bench
        .row(
            "Host call floor: guard.fencing-token",
            Unit::NanosPerOp,
            Target::default(),
            None,
            move || call(rt, ipc, 1_000_000),
        )
        .await;
    rows.extend(row.map(|r| {
        r.note(
            "the cheapest component call (a borrowed handle in, a u64 out), timed in the loop, \
             1,000,000 per run: an acquire+release is such a call plus a resource drop",
        )
    }));
    let row = bench
        .row(
            "Lock acquire+release, 2 contending",
            Unit::NanosPerOp,
            Target::default(),
            Some((
                &[],
                "locks.py",
                &["contended", "--n", "100000", "--procs", "2"],
            )),
            move || lock(rt, ipc, 2, 200_000),
        )
        .await;
    rows.extend(row.map(|r| {
        r.note(
            "wall time / operations; Corral 2 × 200,000, CPython 2 × 100,000 (with a shared \
             counter incremented inside, to check exclusion)",
        )
    }));
    rows
}
