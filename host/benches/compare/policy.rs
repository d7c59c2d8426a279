//! What policy checks cost on the IPC hot paths: the same queue and lock
//! workloads with no policy file and under a profile with a realistic set of
//! grants, alternating run by run. (File opens carry no policy check: a
//! worker's mounts are fixed when it starts.)

use std::path::Path;
use std::time::Instant;

use corral::ipc::QueueConfig;
use corral::policy::Profile;
use corral::{ExitStatus, PolicyFile, Program, Run, Runtime, Stdio, Worker, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, runtime, secs};

/// Fifteen rules, the matching one last: every open walks them all.
const GRANTS: &str = include_str!("../../../bench/policy-grants.toml");

const MESSAGES: usize = 200_000;
const LOCKS: usize = 200_000;

fn spawn(
    rt: &Runtime,
    run: &Run,
    ipc: &Program,
    name: &str,
    args: &[String],
    profile: Option<&Profile>,
) -> Worker {
    let mut spec = WorkerSpec::new(name)
        .args(args.iter().cloned())
        .stdio(Stdio::Capture)
        .run(run);
    if let Some(profile) = profile {
        profile.apply_to(&mut spec);
    }
    rt.spawn(ipc, spec)
}

async fn finish(w: &Worker) -> String {
    assert_eq!(
        w.join().await,
        ExitStatus::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&w.stderr())
    );
    String::from_utf8_lossy(&w.stdout()).into_owned()
}

/// Queue 1→1 of 64 B messages: messages per second.
async fn queue(rt: &Runtime, ipc: &Program, profile: Option<&Profile>) -> f64 {
    let run = Run::new();
    let q = run
        .objects()
        .declare_queue("q", QueueConfig::default())
        .unwrap();
    let start = Instant::now();
    let get = spawn(
        rt,
        &run,
        ipc,
        "get",
        &["get".into(), "q".into(), "64".into(), "1".into()],
        profile,
    );
    let put_args: Vec<String> = ["put", "q", "0", &MESSAGES.to_string(), "64", "1"]
        .map(String::from)
        .into();
    let put = spawn(rt, &run, ipc, "put", &put_args, profile);
    finish(&put).await;
    q.close().await;
    let out = finish(&get).await;
    assert!(out.starts_with(&format!("got {MESSAGES} ")), "{out}");
    MESSAGES as f64 / secs(start)
}

/// Uncontended lock acquire + release: nanoseconds per pair, timed in the guest.
async fn lock(rt: &Runtime, ipc: &Program, profile: Option<&Profile>) -> f64 {
    let run = Run::new();
    run.objects().declare_lock("l", false).unwrap();
    let w = spawn(
        rt,
        &run,
        ipc,
        "lock",
        &["lock".into(), "l".into(), LOCKS.to_string()],
        profile,
    );
    let out = finish(&w).await;
    out.trim()
        .strip_prefix("lock ")
        .and_then(|n| n.parse().ok())
        .expect("lock figure")
}

/// The overhead, in percent, of the median of `with` over that of `without`
/// (for rates, the other way round).
fn overhead(without: &[f64], with: &[f64], lower_is_better: bool) -> f64 {
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(without), median(with));
    if lower_is_better {
        (b / a - 1.0) * 100.0
    } else {
        (a / b - 1.0) * 100.0
    }
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let rt = runtime(64);
    let ipc = rt.load(guest("bench-ipc")).expect("bench-ipc guest");
    let profile = PolicyFile::parse(Path::new("bench-policy.toml"), GRANTS)
        .and_then(|f| f.profile(None))
        .expect("the bench policy parses");
    let mut rows = Vec::new();
    if bench.wants("queue 1→1 64 B, policy") {
        queue(&rt, &ipc, None).await;
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..bench.runs {
            without.push(queue(&rt, &ipc, None).await);
            with.push(queue(&rt, &ipc, Some(&profile)).await);
        }
        let cost = overhead(&without, &with, false);
        rows.push(
            Row::corral_only(
                "queue 1→1 64 B, policy with 15 grants",
                Unit::MsgsPerSec,
                with,
                Target::default(),
            )
            .note(format!(
                "policy checks cost {cost:+.1}% against no policy (target ≤ 5%)"
            )),
        );
    }
    if bench.wants("lock uncontended, policy") {
        lock(&rt, &ipc, None).await;
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..bench.runs {
            without.push(lock(&rt, &ipc, None).await);
            with.push(lock(&rt, &ipc, Some(&profile)).await);
        }
        let cost = overhead(&without, &with, true);
        rows.push(
            Row::corral_only(
                "lock uncontended, policy with 15 grants",
                Unit::NanosPerOp,
                with,
                Target::default(),
            )
            .note(format!(
                "policy checks cost {cost:+.1}% against no policy (target ≤ 5%)"
            )),
        );
    }
    rows
}
