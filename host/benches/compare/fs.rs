//! The shared file under a lock (scenario 5).

use std::time::Instant;

use corral::vfs::MountSpec;
use corral::{ExitStatus, Run, Stdio, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, runtime, secs};

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
    rows
}
