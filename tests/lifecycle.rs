//! Worker lifecycle end to end: every exit-status kind, terminate, limits,
//! isolation of failures, and many workers at once.

mod common;

use std::time::{Duration, Instant};

use common::{load, runtime, runtime_with, stdout_of};
use corral::{ExitStatus, KillReason, Limits, Stdio, WorkerSpec};

fn spec(name: &str) -> WorkerSpec {
    WorkerSpec::new(name).stdio(Stdio::Capture)
}

/// Waits until the worker has written `text` to stdout, so a test acts on a
/// worker that is really running (not still starting).
async fn wait_for_output(worker: &corral::Worker, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stdout_of(worker).contains(text) {
        assert!(Instant::now() < deadline, "worker never printed {text:?}");
        assert!(
            worker.is_alive(),
            "worker ended early: {:?}",
            worker.try_status()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_zero_with_name_and_args() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "hello"), spec("greeter").args(["x", "y z"]));
    assert_eq!(worker.join().await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&worker);
    assert!(
        out.contains(&format!("hello from greeter (worker {})", worker.id())),
        "{out}"
    );
    assert!(out.contains(r#"args: ["x", "y z"]"#), "{out}");
    assert!(!worker.is_alive());
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_is_reported_exactly() {
    let rt = runtime();
    let program = load(&rt, "exit-code");
    for code in [0, 1, 3, 42, 255] {
        let worker = rt.spawn(&program, spec("exit").args([code.to_string()]));
        assert_eq!(worker.join().await, ExitStatus::Exited { code });
        assert_eq!(
            String::from_utf8_lossy(&worker.stderr()),
            format!("(stderr) exiting with {code}\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_reports_message_and_wasm_backtrace_with_names() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "trap"), spec("trap").args(["unreachable"]));
    let ExitStatus::Trapped { message, backtrace } = worker.join().await else {
        panic!("expected a trap, got {:?}", worker.try_status());
    };
    assert_eq!(message, "wasm `unreachable` instruction executed");
    let names: Vec<_> = backtrace
        .iter()
        .filter_map(|f| f.function.as_deref())
        .collect();
    assert_eq!(names.first(), Some(&"trap::hit_unreachable"), "{names:?}");
    assert!(names.contains(&"trap::main"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_traps_and_its_message_reaches_stderr() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "trap"), spec("panicky").args(["panic"]));
    let status = worker.join().await;
    assert!(matches!(status, ExitStatus::Trapped { .. }), "{status:?}");
    let err = String::from_utf8_lossy(&worker.stderr()).into_owned();
    assert!(err.contains("the trap guest panicked on purpose"), "{err}");
    assert!(
        status.to_string().contains("core::panicking::panic_fmt"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_recursion_traps_with_a_hint() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "trap"), spec("deep").args(["overflow"]));
    let status = worker.join().await;
    let text = status.to_string();
    assert!(text.contains("stack overflow"), "{text}");
    assert!(text.contains("trap::recurse"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_stops_a_spinning_worker_within_100ms() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "spin"), spec("spin"));
    wait_for_output(&worker, "spinning").await;
    let asked = Instant::now();
    worker.terminate();
    let status = worker.join().await;
    let took = asked.elapsed();
    assert_eq!(
        status,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    assert!(took < Duration::from_millis(100), "terminate took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_stops_a_worker_waiting_in_a_host_call() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "sleepy"), spec("sleepy"));
    wait_for_output(&worker, "sleeping").await;
    let asked = Instant::now();
    worker.terminate();
    assert_eq!(
        worker.join().await,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "took {:?}",
        asked.elapsed()
    );
    assert!(!stdout_of(&worker).contains("woke up"));
}

#[tokio::test(flavor = "multi_thread")]
async fn join_timeout_gives_up_without_stopping_the_worker() {
    let rt = runtime();
    let worker = rt.spawn(&load(&rt, "sleepy"), spec("sleepy").args(["200"]));
    assert_eq!(worker.join_timeout(Duration::from_millis(20)).await, None);
    assert!(worker.is_alive());
    assert_eq!(
        worker.join_timeout(Duration::from_secs(10)).await,
        Some(ExitStatus::Exited { code: 0 })
    );
    assert!(stdout_of(&worker).contains("woke up"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_budget_kills_a_spinning_worker_but_not_a_sleeping_one() {
    let rt = runtime();
    let limits = Limits {
        cpu_time: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let spinner = rt.spawn(&load(&rt, "spin"), spec("spin").limits(limits.clone()));
    // Sleeping costs no CPU: 400 ms asleep stays within a 200 ms budget.
    let sleeper = rt.spawn(
        &load(&rt, "sleepy"),
        spec("sleepy").args(["400"]).limits(limits),
    );
    let report = spinner.wait_report().await;
    assert_eq!(
        report.status,
        ExitStatus::Killed {
            reason: KillReason::CpuTime { limit_ms: 200 }
        }
    );
    assert!(report.cpu_time >= Duration::from_millis(200), "{report:?}");
    assert_eq!(sleeper.join().await, ExitStatus::Exited { code: 0 });
}

#[tokio::test(flavor = "multi_thread")]
async fn wall_timeout_kills_a_waiting_worker() {
    let rt = runtime();
    let limits = Limits {
        wall_time: Some(Duration::from_millis(150)),
        ..Limits::default()
    };
    let worker = rt.spawn(&load(&rt, "sleepy"), spec("sleepy").limits(limits));
    let report = worker.wait_report().await;
    assert_eq!(
        report.status,
        ExitStatus::Killed {
            reason: KillReason::WallTime { limit_ms: 150 }
        }
    );
    assert!(report.duration >= Duration::from_millis(150), "{report:?}");
    assert!(report.duration < Duration::from_secs(2), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_cap_refuses_growth_and_names_the_limit() {
    let rt = runtime();
    let program = load(&rt, "alloc");
    let limits = Limits {
        memory: Some(16 << 20),
        ..Limits::default()
    };
    // A guest that treats the refusal as an ordinary allocation failure.
    let graceful = rt.spawn(
        &program,
        spec("graceful").args(["64", "try"]).limits(limits.clone()),
    );
    assert_eq!(graceful.join().await, ExitStatus::Exited { code: 0 });
    assert!(
        stdout_of(&graceful).contains("allocation refused after"),
        "{}",
        stdout_of(&graceful)
    );
    // A guest that aborts on allocation failure (Rust's default) is killed by the limit.
    let aborting = rt.spawn(&program, spec("aborting").args(["64"]).limits(limits));
    let report = aborting.wait_report().await;
    let ExitStatus::Killed {
        reason: KillReason::Memory {
            limit, requested, ..
        },
    } = report.status
    else {
        panic!("expected a memory kill, got {:?}", report.status);
    };
    assert_eq!(limit, 16 << 20);
    assert!(requested > limit);
    assert!(report.peak_memory <= 16 << 20, "{report:?}");
    // Within the cap the same guest succeeds.
    let fits = rt.spawn(
        &program,
        spec("fits").args(["4"]).limits(Limits {
            memory: Some(16 << 20),
            ..Limits::default()
        }),
    );
    assert_eq!(fits.join().await, ExitStatus::Exited { code: 0 });
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trap_leaves_nine_peers_exiting_zero() {
    let rt = runtime();
    let hello = load(&rt, "hello");
    let trap = load(&rt, "trap");
    let workers: Vec<_> = (0..10)
        .map(|i| {
            if i == 4 {
                rt.spawn(&trap, spec("bad"))
            } else {
                rt.spawn(&hello, spec(&format!("good-{i}")))
            }
        })
        .collect();
    for (i, worker) in workers.iter().enumerate() {
        let status = worker.join().await;
        if i == 4 {
            assert!(matches!(status, ExitStatus::Trapped { .. }), "{status:?}");
        } else {
            assert_eq!(status, ExitStatus::Exited { code: 0 }, "worker {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_workers_spawn_and_join_concurrently() {
    let (rt, _) = runtime_with(1_100);
    let program = load(&rt, "hello");
    let workers: Vec<_> = (0..1_000)
        .map(|i| rt.spawn(&program, spec(&format!("w{i}"))))
        .collect();
    let mut ids = std::collections::HashSet::new();
    for (i, worker) in workers.iter().enumerate() {
        assert_eq!(
            worker.join().await,
            ExitStatus::Exited { code: 0 },
            "worker {i}"
        );
        assert!(stdout_of(worker).starts_with(&format!("hello from w{i} ")));
        assert!(ids.insert(worker.id()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_host_refuses_to_start_more_workers_and_recovers() {
    let (rt, _) = runtime_with(2);
    let sleepy = load(&rt, "sleepy");
    let a = rt.spawn(&sleepy, spec("a"));
    let b = rt.spawn(&sleepy, spec("b"));
    wait_for_output(&a, "sleeping").await;
    wait_for_output(&b, "sleeping").await;
    let c = rt.spawn(&sleepy, spec("c").args(["1"]));
    let ExitStatus::FailedToStart { reason } = c.join().await else {
        panic!("expected failed-to-start, got {:?}", c.try_status());
    };
    assert!(reason.contains("capacity of 2 live workers"), "{reason}");
    // Slots come back when workers end.
    a.terminate();
    a.join().await;
    let d = rt.spawn(&sleepy, spec("d").args(["1"]));
    assert_eq!(d.join().await, ExitStatus::Exited { code: 0 });
    b.terminate();
    assert_eq!(
        b.join().await,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_is_only_what_the_spec_gives() {
    let rt = runtime();
    let worker = rt.spawn(
        &load(&rt, "hello-p1"),
        spec("p1").env("GREETING", "hi").args(["a"]),
    );
    assert_eq!(worker.join().await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&worker);
    assert!(
        out.contains("hello from a preview1 module, args: [\"a\"]"),
        "{out}"
    );
    assert!(out.contains("GREETING=hi"), "{out}");
    let bare = rt.spawn(&load(&rt, "hello-p1"), spec("p1"));
    bare.join().await;
    assert!(!stdout_of(&bare).contains("GREETING"));
}
