//! Restart policies (issue 17), end to end with the `comeback` guest, which
//! fails its first N starts: workers that restart until they succeed,
//! workers given up at their intensity, what a restart frees, and the same
//! policy through `corral run` and a manifest.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::child::{Bounded, output_within};
use common::{g, load, runtime_with, shared_cache_dir, stdout_of, text};
use corral::events::Event;
use corral::restart::{Restart, RestartPolicy};
use corral::{ExitStatus, KillReason, Run, Stdio, WorkerSpec};

/// Every wait has this deadline.
const DEADLINE: Duration = Duration::from_secs(60);

fn policy(when: Restart, max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        when,
        max_restarts,
        backoff: Duration::ZERO,
        ..RestartPolicy::DEFAULT
    }
}

fn restarts_of(events: &[Event], worker: &str) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Restarting { name, restart, .. } if name == worker => Some(*restart),
            _ => None,
        })
        .collect()
}

fn gave_up(events: &[Event], worker: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::GaveUp { name, .. } if name == worker))
}

/// Spawns `comeback ARGS` named `name` in `run` under `restart`, output
/// captured, and waits for its report.
async fn comeback(
    args: &[&str],
    name: &str,
    restart: RestartPolicy,
    run: &Run,
) -> (corral::Worker, corral::WorkerReport, Vec<Event>) {
    let (rt, events) = runtime_with(8);
    let spec = WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .restart(restart)
        .run(run);
    let worker = rt.spawn(&load(&rt, "comeback"), spec);
    let report = tokio::time::timeout(DEADLINE, worker.wait_report())
        .await
        .expect("the worker ended in time");
    (worker, report, events.events())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_fails_its_first_three_starts_succeeds_on_the_fourth() {
    let (worker, report, events) = comeback(
        &["3", "exit"],
        "w",
        policy(Restart::OnFailure, 5),
        &Run::new(),
    )
    .await;
    assert_eq!(report.status, ExitStatus::Exited { code: 0 });
    assert_eq!(report.restarts, 3);
    assert_eq!(restarts_of(&events, "w"), [1, 2, 3]);
    assert!(!gave_up(&events, "w"));
    let out = stdout_of(&worker);
    assert_eq!(out.matches("failing (exit)").count(), 3, "{out}");
    assert!(out.ends_with("ok after 3 restarts\n"), "{out}");
    let exited: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Exited { restarts, .. } => Some(*restarts),
            _ => None,
        })
        .collect();
    assert_eq!(exited, [3], "one exited event, after the last start");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_always_fails_is_given_up_at_its_intensity() {
    let (worker, report, events) = comeback(
        &["1000", "trap"],
        "w",
        policy(Restart::OnFailure, 3),
        &Run::new(),
    )
    .await;
    assert!(
        matches!(report.status, ExitStatus::Trapped { .. }),
        "{:?}",
        report.status
    );
    assert_eq!(report.restarts, 3);
    assert!(gave_up(&events, "w"));
    assert_eq!(
        stdout_of(&worker).matches("failing (trap)").count(),
        4,
        "the first start and three restarts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_leaves_a_clean_exit_alone_and_always_restarts_it() {
    let run = Run::new();
    let (_, report, events) =
        comeback(&["0", "exit"], "calm", policy(Restart::OnFailure, 3), &run).await;
    assert_eq!(report.status, ExitStatus::Exited { code: 0 });
    assert_eq!(report.restarts, 0);
    assert!(restarts_of(&events, "calm").is_empty());
    let (_, report, events) =
        comeback(&["0", "exit"], "keen", policy(Restart::Always, 2), &run).await;
    assert_eq!(report.status, ExitStatus::Exited { code: 0 });
    assert_eq!(report.restarts, 2);
    assert!(gave_up(&events, "keen"), "always restarts until the limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_during_the_backoff_ends_the_worker_at_once() {
    let (rt, events) = runtime_with(8);
    let restart = RestartPolicy {
        backoff: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        ..policy(Restart::OnFailure, 5)
    };
    let spec = WorkerSpec::new("w")
        .args(["1000", "exit"])
        .stdio(Stdio::Capture)
        .restart(restart);
    let worker = rt.spawn(&load(&rt, "comeback"), spec);
    let waiting = async {
        while restarts_of(&events.events(), "w").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("a restart was scheduled");
    worker.terminate();
    let report = tokio::time::timeout(Duration::from_secs(10), worker.wait_report())
        .await
        .expect("terminated within the backoff");
    assert_eq!(
        report.status,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    assert_eq!(report.restarts, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_a_failed_start_held_is_freed_and_its_restart_is_told() {
    let run = Run::new();
    run.objects().declare_lock("l", false).unwrap();
    let (worker, report, _) = comeback(
        &["1", "exit", "l"],
        "w",
        policy(Restart::OnFailure, 5),
        &run,
    )
    .await;
    assert_eq!(report.status, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&worker);
    assert!(
        out.contains("start 0: previous owner died: false\n")
            && out.contains("start 1: previous owner died: true\n"),
        "{out}"
    );
}

/// Under the Redis backend: each failed start dies holding the lock, its
/// restart is told so (after the lease-free abandonment reaches Redis),
/// and the last start's normal release has reached Redis by the time the
/// worker is reported ended.
#[tokio::test(flavor = "multi_thread")]
async fn under_redis_each_restart_is_told_and_the_last_release_lands() {
    let redis = common::redis::Redis::start();
    let backend = redis.backend("supervision", Duration::from_secs(2)).await;
    let run = Run::with_backend(corral::ipc::Backend::Redis(backend));
    let lock = run.objects().declare_lock("l", false).unwrap();
    let (worker, report, _) = comeback(
        &["2", "trap", "l"],
        "w",
        policy(Restart::OnFailure, 5),
        &run,
    )
    .await;
    let out = stdout_of(&worker);
    assert_eq!(report.status, ExitStatus::Exited { code: 0 }, "{out}");
    assert_eq!(report.restarts, 2);
    for told in [
        "start 0: previous owner died: false\n",
        "start 1: previous owner died: true\n",
        "start 2: previous owner died: true\n",
    ] {
        assert!(out.contains(told), "{out}");
    }
    let guard = lock
        .try_acquire(99)
        .await
        .unwrap()
        .expect("released by the worker's last start");
    assert!(!guard.previous_owner_died());
    guard.release().await;
}

fn corral(args: &[&str], dir: &std::path::Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .current_dir(dir)
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args)
        .env("RUST_BACKTRACE", "1");
    output_within(&mut command, b"", DEADLINE)
}

#[test]
fn the_cli_restarts_as_told_and_counts_the_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let out = corral(
        &[
            "run",
            "--restart",
            "on-failure",
            "--backoff",
            "0",
            &g("comeback"),
            "2",
            "exit",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("ok after 2 restarts\n"));
    let err = text(&out.stderr);
    assert!(
        err.contains("corral: comeback exited 1; restart 2 in 0 ms"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[worker]]\nname = \"w\"\ncomponent = \"{}\"\nargs = [\"9\", \"exit\"]\n\
             restart = \"on-failure\"\nmax-restarts = 1\nbackoff = \"0s\"\n\n\
             [[worker]]\nname = \"fine\"\ncomponent = \"{}\"\nargs = [\"0\", \"exit\"]\n\
             restart = \"on-failure\"\n",
            g("comeback"),
            g("comeback")
        ),
    )
    .unwrap();
    let out = corral(&["up", "m.toml"], dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("corral: w given up after 1 restarts"), "{err}");
    assert!(err.contains("(") && err.contains("1 restart)"), "{err}");
    assert!(
        err.contains("2 workers, 1 exited 0, 1 failed, 1 restarts"),
        "{err}"
    );

    std::fs::write(
        &manifest,
        format!(
            "[[worker]]\nname = \"w\"\ncomponent = \"{}\"\nrestart = \"sometimes\"\n",
            g("comeback")
        ),
    )
    .unwrap();
    let out = corral(&["up", "m.toml"], dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("m.toml: TOML parse error at line 4")
            && err.contains("unknown variant `sometimes`, expected one of `never`, `on-failure`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_a_listening_worker_finish_and_stops_a_deaf_one() {
    let (rt, events) = runtime_with(8);
    let program = load(&rt, "graceful");
    let spawn = |mode: &str, restart: RestartPolicy| {
        let spec = WorkerSpec::new(mode)
            .args([mode])
            .stdio(Stdio::Capture)
            .restart(restart);
        rt.spawn(&program, spec)
    };
    // Under `always`, a worker that ends after the request would restart.
    let listener = spawn("listen", policy(Restart::Always, 5));
    let deaf = spawn("ignore", RestartPolicy::DEFAULT);
    let ready = async {
        while ![&listener, &deaf]
            .iter()
            .all(|w| stdout_of(w).starts_with("ready"))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, ready)
        .await
        .expect("both ready");
    let grace = Duration::from_millis(500);
    let (listened, ignored) = tokio::time::timeout(
        DEADLINE,
        futures::future::join(listener.shutdown(grace), deaf.shutdown(grace)),
    )
    .await
    .expect("both stopped within the grace period and a little");
    assert_eq!(listened, ExitStatus::Exited { code: 0 });
    assert!(stdout_of(&listener).ends_with("clean exit\n"));
    assert_eq!(
        ignored,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    assert!(restarts_of(&events.events(), "listen").is_empty());
}

/// Runs `corral GLOBAL... --shutdown-grace 1s up m.toml` in `dir`, and
/// sends SIGTERM once both of its `graceful` workers say they are ready.
fn sigterm_once_both_are_ready(dir: &std::path::Path, global: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .current_dir(dir)
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(global)
        .args(["--shutdown-grace", "1s", "up", "m.toml"]);
    let mut child = Bounded::spawn(&mut command, b"", DEADLINE);
    // The two say so in either order.
    let ready = std::cell::Cell::new(0);
    child.wait_for_line(|line| {
        ready.set(ready.get() + usize::from(line.contains("] ready")));
        ready.get() == 2
    });
    child.signal(libc::SIGTERM);
    child.finish()
}

#[test]
fn sigterm_gives_the_workers_their_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[worker]]\nname = \"listener\"\ncomponent = \"{0}\"\nargs = [\"listen\"]\n\n\
             [[worker]]\nname = \"deaf\"\ncomponent = \"{0}\"\nargs = [\"ignore\"]\n",
            g("graceful")
        ),
    )
    .unwrap();
    let out = sigterm_once_both_are_ready(dir.path(), &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stdout.contains("[listener] clean exit"), "{stdout}");
    assert!(
        stderr.contains("corral: terminated (SIGTERM); asking 2 workers to stop (grace 1s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("corral: grace period over; terminating 1 workers"),
        "{stderr}"
    );
    assert!(stderr.contains("listener  exited 0"), "{stderr}");
    assert!(stderr.contains("deaf      killed: terminated"), "{stderr}");

    // With --events json, each stage is an event.
    let out = sigterm_once_both_are_ready(dir.path(), &["--events", "json"]);
    assert_eq!(out.status.code(), Some(143));
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|e: &serde_json::Value| {
            e["event"]
                .as_str()
                .is_some_and(|k| k.starts_with("shutdown"))
        })
        .collect();
    assert_eq!(
        events,
        [
            serde_json::json!({"event": "shutdown-requested", "signal": "SIGTERM",
                "reason": "terminated (SIGTERM)", "grace_ms": 1000, "workers": 2}),
            serde_json::json!({"event": "shutdown-terminating", "reason": "grace period over",
                "workers": 1}),
        ],
        "{}",
        text(&out.stderr)
    );
}

/// SIGTERM while a `[[pool]]` is busy: it takes no more input, finishes
/// its tasks in flight within the grace period and puts their results,
/// which its reader still gets; none is lost and the rest stays queued.
#[test]
fn sigterm_lets_a_pool_finish_its_tasks_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        format!(
            "[queues.jobs]\nacknowledged = true\n[queues.results]\n\n\
             [[worker]]\nname = \"source\"\ncomponent = \"{stage}\"\n\
             args = [\"source\", \"jobs\", \"40\", \"300\"]\nmounts = [\"@shared:/\"]\n\
             [[worker]]\nname = \"reader\"\ncomponent = \"{stage}\"\nargs = [\"echo\", \"results\"]\n\n\
             [[pool]]\nname = \"slow\"\ncomponent = \"{slow}\"\nworkers = 2\n\
             input = \"jobs\"\noutput = \"results\"\nproducers = [\"source\"]\n",
            stage = g("stage"),
            slow = g("slow"),
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .current_dir(dir.path())
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(["--shutdown-grace", "3s", "up", "m.toml"]);
    let mut child = Bounded::spawn(&mut command, b"", DEADLINE);
    child.wait_for_line(|line| line.contains("[reader] got 300"));
    child.signal(libc::SIGTERM);
    let out = child.finish();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("slow") && l.contains("pool:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("(end of input: shutdown)"), "{line}");
    let done: usize = line
        .split("pool: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        line.contains(&format!("{done} tasks, {done} ok, 0 failed")),
        "{line}"
    );
    // It stopped taking: 40 tasks of 300 ms on 2 instances take 6 s.
    assert!((1..40).contains(&done), "{line}");
    // Every task it ran reached the reader, the ones in flight at the
    // signal included: the pool put its stop message after them.
    assert_eq!(
        stdout.matches("[reader] got 300").count(),
        done,
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("terminating pool"), "{stderr}");
}
