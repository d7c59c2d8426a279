//! Issue 16's guest-driven fuzzer of the host's functions: the `host-fuzz`
//! guest calls IPC, `wasi:filesystem` and `process` with random handles,
//! sizes, offsets, paths, names and timeouts, one seed per worker, through
//! the real runtime, on a scratch tree, a subtree of the run's tree and a
//! read-only view of the sibling's directory. For every seed the host must
//! answer: the worker exits 0 after its summary line, or (a seed that ends
//! with a forged-handle probe) traps cleanly after it; never a host panic
//! ("internal error"), an unasked kill or a hang. One seed in four may wait
//! without a timeout and is killed wherever it waits. However a fuzzer
//! ended, its locks, barrier and semaphore must then serve the next user,
//! and a sibling started before it, doing ordinary queue puts and gets and
//! file writes in the same run, must finish correctly.
//!
//! `HOST_FUZZ_SEEDS` (default 32) and `HOST_FUZZ_OPS` (default 1000) size the
//! run; `make fuzz` raises both. `HOST_FUZZ_FIRST_SEED` starts elsewhere.

mod common;

use std::time::Duration;

use common::{load, profile, runtime_with, stdout_of};
use corral::ipc::{PipeConfig, QueueConfig};
use corral::vfs::{Mount, MountSource, MountSpec};
use corral::{ExitStatus, Run, Runtime, Stdio, Worker, WorkerSpec};

/// Every wait in this test ends by then, pass or fail.
const DEADLINE: Duration = Duration::from_secs(180);

/// Fuzzers run at once (each in its own run, with its own sibling).
const AT_ONCE: usize = 4;

/// What the fuzzer is granted: every object it fuzzes (`fz-ro` for `get`
/// only), spawning copies of itself, and enough memory that its largest
/// buffers never reach the cap.
const POLICY: &str = r#"
[profiles.p]
memory = "256MiB"
[profiles.p.ipc]
queues = { fz-q = ["*"], fz-tiny = ["*"], fz-ro = ["get"] }
pipes = { fz-pipe = ["*"] }
locks = { fz-lock = ["*"], fz-rlock = ["*"] }
semaphores = { fz-sem = ["*"] }
events = { fz-event = ["*"] }
barriers = { fz-bar1 = ["*"], fz-bar3 = ["*"] }
conditions = { fz-cond = ["*"], fz-rcond = ["*"] }
[profiles.p.spawn]
components = ["host-fuzz"]
max-children = 4
max-descendants = 8
"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A run with the objects the fuzzer knows by name, and the sibling's queue.
fn fuzz_run(rt: &Runtime) -> Run {
    let run = Run::new();
    let objects = run.objects();
    let queue = |capacity, max_message, max_bytes| QueueConfig {
        capacity,
        max_message,
        max_bytes,
        ..QueueConfig::default()
    };
    objects
        .declare_queue("fz-q", queue(8, 64 << 10, 256 << 10))
        .unwrap();
    objects.declare_queue("fz-tiny", queue(1, 8, 8)).unwrap();
    objects
        .declare_queue("fz-ro", queue(4, 1024, 4096))
        .unwrap();
    objects
        .declare_queue("sib-q", queue(4, 1024, 4096))
        .unwrap();
    objects
        .declare_pipe("fz-pipe", PipeConfig::default())
        .unwrap();
    objects.declare_lock("fz-lock", false).unwrap();
    objects.declare_lock("fz-rlock", true).unwrap();
    objects.declare_semaphore("fz-sem", 2, 3).unwrap();
    objects.declare_event("fz-event").unwrap();
    objects.declare_barrier("fz-bar1", 1).unwrap();
    objects.declare_barrier("fz-bar3", 3).unwrap();
    objects.declare_condition("fz-cond", "fz-lock").unwrap();
    objects.declare_condition("fz-rcond", "fz-rlock").unwrap();
    run.register_component("host-fuzz", load(rt, "host-fuzz"));
    run
}

/// The subtree `subtree` of the run's tree at `guest_path`.
fn shared(subtree: &str, guest_path: &str, read_only: bool) -> MountSpec {
    MountSpec {
        source: MountSource::Shared {
            subtree: subtree.into(),
        },
        guest_path: guest_path.into(),
        read_only,
    }
}

async fn join(worker: &Worker) -> ExitStatus {
    tokio::time::timeout(DEADLINE, worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} hung: no end within {DEADLINE:?}", worker.name()))
}

/// Runs one seed beside a sibling; returns the fuzzer's summary line, or
/// why the host failed the seed.
async fn one_seed(rt: &Runtime, seed: u64, ops: u64) -> Result<String, String> {
    let run = fuzz_run(rt);
    let program = load(rt, "host-fuzz");
    let tree = Mount::mem(run.fs(), "/", false).unwrap().root();
    tree.create_dir_at("fz").unwrap();
    tree.create_dir_at("sib").unwrap();
    let sibling = rt.spawn(
        &program,
        WorkerSpec::new("sibling")
            .args(["sibling", "sib-q", "/sib", "40"])
            .stdio(Stdio::Capture)
            .mount(MountSpec::shared_root())
            .run(&run),
    );
    let kill_after = killed_after(seed);
    let mut args = vec!["fuzz".to_string(), seed.to_string(), ops.to_string()];
    if kill_after.is_some() {
        args.push("block".into());
    }
    let mut spec = WorkerSpec::new("fuzz")
        .args(args)
        .stdio(Stdio::Capture)
        .mount(MountSpec {
            source: MountSource::Scratch,
            guest_path: "/".into(),
            read_only: false,
        })
        .mount(shared("/fz", "/shared", false))
        .mount(shared("/sib", "/sibling", true))
        .run(&run);
    profile(POLICY).apply_to(&mut spec);
    let fuzzer = rt.spawn(&program, spec);
    if let Some(after) = kill_after
        && fuzzer.join_timeout(after).await.is_none()
    {
        fuzzer.terminate();
    }
    let status = join(&fuzzer).await;
    let objects_ok = objects_recovered(&run).await;
    let out = stdout_of(&fuzzer);
    let err = String::from_utf8_lossy(&fuzzer.stderr()).into_owned();
    let sibling_status = join(&sibling).await;
    let sibling_out = stdout_of(&sibling);
    let summary = out.lines().find(|l| l.starts_with("summary "));
    let probed = out.lines().any(|l| l.starts_with("probe "));
    let why = match (&status, summary) {
        (_, _) if sibling_status != (ExitStatus::Exited { code: 0 }) => {
            format!("the sibling failed: {sibling_status:?} {sibling_out}")
        }
        _ if objects_ok.is_err() => objects_ok.unwrap_err(),
        (ExitStatus::Killed { reason }, _) if kill_after.is_some() => {
            return Ok(format!("killed ({reason:?}) after {kill_after:?}"));
        }
        (ExitStatus::Exited { code: 0 }, Some(summary)) => return Ok(summary.to_string()),
        (ExitStatus::Trapped { message, .. }, Some(summary))
            if probed && !message.contains("internal error") =>
        {
            return Ok(format!(
                "{summary} (probe trapped: {})",
                first_line(message)
            ));
        }
        _ => format!("{status:?}"),
    };
    let tail: String = out.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    Err(format!(
        "seed {seed}: {why}; stdout ends: {tail}; stderr: {err}"
    ))
}

/// Whether `seed` is one the test kills, and after how long: one in four,
/// after 10 ms to 300 ms; those runs may wait without a timeout.
fn killed_after(seed: u64) -> Option<Duration> {
    seed.is_multiple_of(4)
        .then(|| Duration::from_millis(10 + seed.wrapping_mul(37) % 290))
}

/// Once the fuzzer has ended, however it ended, its objects serve the next
/// user: both locks can be taken (its guards were released or abandoned),
/// no party is left waiting at the barrier, and the semaphore is within
/// its bound.
async fn objects_recovered(run: &Run) -> Result<(), String> {
    let objects = run.objects();
    for name in ["fz-lock", "fz-rlock"] {
        let lock = objects.lock(name).unwrap();
        match lock
            .acquire(u64::MAX - 1, Some(Duration::from_secs(10)))
            .await
        {
            Ok(guard) => guard.release().await,
            Err(e) => {
                return Err(format!(
                    "{name} is still held after its holder ended: {e:?}"
                ));
            }
        }
    }
    let waiting = objects.barrier("fz-bar3").unwrap().waiting().await;
    if waiting != 0 {
        return Err(format!(
            "{waiting} parties still wait at fz-bar3 after the fuzzer ended"
        ));
    }
    let value = objects.semaphore("fz-sem").unwrap().value().await;
    if value > 3 {
        return Err(format!("fz-sem holds {value} permits, past its bound of 3"));
    }
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_survives_every_seed_and_the_sibling_is_unaffected() {
    let (rt, _) = runtime_with(64);
    let first = env_or("HOST_FUZZ_FIRST_SEED", 1);
    let seeds = env_or("HOST_FUZZ_SEEDS", 32);
    let ops = env_or("HOST_FUZZ_OPS", 1000);
    let mut failures = Vec::new();
    let all: Vec<u64> = (first..first + seeds).collect();
    for chunk in all.chunks(AT_ONCE) {
        let runs = chunk.iter().map(|&seed| {
            let rt = rt.clone();
            tokio::spawn(async move { (seed, one_seed(&rt, seed, ops).await) })
        });
        for task in futures::future::join_all(runs).await {
            match task.expect("a seed's task panicked") {
                (seed, Ok(summary)) => eprintln!("seed {seed}: {summary}"),
                (_, Err(why)) => failures.push(why),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
