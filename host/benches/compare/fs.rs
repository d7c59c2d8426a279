//! The shared file under a lock (scenario 5), and single file operations
//! on the in-memory tree and on a mounted host directory.

use std::time::Instant;

use corral::vfs::{MountSource, MountSpec};
use corral::{ExitStatus, Program, Run, Runtime, Stdio, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, runtime, secs};
use crate::ipc::{field, finish};

/// Operations per run of each single-operation row.
const OPS: &str = "20000";

/// Runs the `fs-bench` guest once: ns per `op` on `mount` at `/data`.
async fn file_op(rt: &Runtime, bench: &Program, op: &str, mount: MountSource) -> f64 {
    let spec = WorkerSpec::new(format!("fs-{op}"))
        .args([op, "/data", OPS])
        .stdio(Stdio::Capture)
        .mount(MountSpec {
            source: mount,
            guest_path: "/data".into(),
            read_only: false,
        })
        .run(&Run::new());
    field(&finish(&rt.spawn(bench, spec)).await, op, 0)
}

const WRITERS: usize = 10;
const LINES: &str = "10000";

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let rt = runtime(64);
    let appender = rt.load(guest("appender")).expect("appender guest");
    let linecheck = rt.load(guest("linecheck")).expect("linecheck guest");
    let spec = |name: String, run: &Run, args: &[&str]| {
        WorkerSpec::new(name)
            .args(args.iter().copied())
            .stdio(Stdio::Capture)
            .mount(MountSpec::shared_root())
            .run(run)
    };
    let (rt, appender, linecheck, spec) = (&rt, &appender, &linecheck, &spec);
    let mut rows = Vec::new();
    let workload = "10 workers × 10,000 locked appends, one file";
    let row = bench
        .row(
            workload,
            Unit::AppendsPerSec,
            Target {
                ratio: Some(10.0),
                absolute: Some(500e3),
            },
            Some((
                &[],
                "appends.py",
                &["appends", "--n", LINES, "--procs", "10"],
            )),
            move || async move {
                let run = Run::new();
                run.objects().declare_lock("file", false).unwrap();
                let start = Instant::now();
                let writers: Vec<_> = (0..WRITERS)
                    .map(|i| {
                        let s = spec(format!("w{i}"), &run, &["/log.txt", "file", LINES]);
                        rt.spawn(appender, s)
                    })
                    .collect();
                for w in &writers {
                    assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
                }
                let elapsed = secs(start);
                // Outside the clock: exactly 100,000 intact lines.
                let check = rt.spawn(
                    linecheck,
                    spec("check".into(), &run, &["/log.txt", "100000"]),
                );
                let verdict = check.join().await;
                assert!(
                    verdict.success(),
                    "{}",
                    String::from_utf8_lossy(&check.stdout())
                );
                (WRITERS * 10_000) as f64 / elapsed
            },
        )
        .await;
    rows.extend(row.map(|r| {
        r.note(
            "seek to the end + two writes per line under the lock; Corral's tree in memory, \
             CPython's file in /dev/shm",
        )
    }));

    let fs_bench = rt.load(guest("fs-bench")).expect("fs-bench guest");
    let fs_bench = &fs_bench;
    let host_dir = tempfile::tempdir().expect("a temporary directory");
    let ops = [
        ("File write+read 4 KiB", "rw", 5000.0),
        ("File stat", "stat", 2000.0),
        ("File open+close", "open", 2000.0),
    ];
    for (workload, op, ns) in ops {
        let row = bench
            .row(
                workload,
                Unit::NanosPerOp,
                Target {
                    ratio: None,
                    absolute: Some(ns),
                },
                Some((&[], "fileops.py", &[op, "--n", OPS])),
                move || file_op(rt, fs_bench, op, MountSource::Scratch),
            )
            .await;
        rows.extend(row.map(|r| {
            r.note(
                "std::fs in the guest, timed in its loop, 20,000 per run; Corral's tree in \
                 memory, CPython's file in /dev/shm",
            )
        }));
        let dir = host_dir.path().to_path_buf();
        let row = bench
            .row(
                &format!("{workload}, host directory mounted"),
                Unit::NanosPerOp,
                Target::default(),
                None,
                move || {
                    let dir = dir.clone();
                    async move { file_op(rt, fs_bench, op, MountSource::Host { dir }).await }
                },
            )
            .await;
        rows.extend(row.map(|r| r.note("the same on a host directory (tmpfs or disk) mounted rw")));
    }
    rows
}
