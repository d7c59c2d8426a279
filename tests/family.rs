//! Spawn families: however a worker spawns, its tree stays inside its own
//! limits (children count, memory cap, CPU time), its children's names stay
//! under its own, and a bystander started before the attack is unaffected.

mod common;

use std::time::Duration;

use common::{load, profile, runtime_with, spawn_under, stdout_of};
use corral::ipc::PipeConfig;
use corral::{Event, ExitStatus, KillReason, Run, Runtime, Stdio, Worker, WorkerSpec};

/// Every wait in these tests ends by then, pass or fail.
const PATIENCE: Duration = Duration::from_secs(120);

/// A run where `hostile-family` may spawn copies of itself.
fn family_run(rt: &Runtime) -> Run {
    let run = Run::new();
    run.register_component("hostile-family", load(rt, "hostile-family"));
    run
}

/// A bystander that must be unaffected by whatever the family does.
fn bystander(rt: &Runtime) -> Worker {
    rt.spawn(
        &load(rt, "sleepy"),
        WorkerSpec::new("bystander")
            .args(["300"])
            .stdio(Stdio::Capture),
    )
}

async fn join(worker: &Worker) -> ExitStatus {
    tokio::time::timeout(PATIENCE, worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} did not end within {PATIENCE:?}", worker.name()))
}

async fn bystander_ok(worker: Worker) {
    assert_eq!(
        join(&worker).await,
        ExitStatus::Exited { code: 0 },
        "the bystander was affected"
    );
}

fn started(events: &[Event], under: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started { name, .. } if name.starts_with(under) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn exited_under(events: &[Event], under: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Exited { name, .. } if name.starts_with(under)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_bomb_is_stopped_by_the_descendant_limit() {
    let (rt, events) = runtime_with(64);
    let run = family_run(&rt);
    let policy = profile(
        "[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\nmax-children = 2\nmax-descendants = 10\n",
    );
    let root = spawn_under(&rt, &run, "hostile-family", "root", &["bomb", "2"], &policy);
    assert_eq!(
        join(&root).await,
        ExitStatus::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&root.stderr())
    );
    assert_eq!(
        started(&events.events(), "root").len(),
        11,
        "the root and exactly 10 descendants"
    );
    let refused = events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Denied { rule, .. } if rule == "spawn.max-descendants"))
        .count();
    assert!(refused > 0, "the rule named in denial events");
    let lonely = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "lonely",
        &["bomb", "2"],
        &profile("[profiles.p]\n"),
    );
    assert_eq!(join(&lonely).await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&lonely);
    assert!(
        out.starts_with("spawned 0, then Error::Denied(") && out.contains("(spawn.components)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawn_grant_that_sets_no_limits_gets_the_safe_defaults() {
    let (rt, events) = runtime_with(256);
    let by = bystander(&rt);
    let run = family_run(&rt);
    let policy = profile("[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n");
    assert_eq!(policy.policy.spawn.max_children, 16);
    assert_eq!(policy.policy.spawn.max_descendants, 64);
    // Each worker tries 20 children: unlimited, that is 20^k workers.
    let root = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "root",
        &["bomb", "20"],
        &policy,
    );
    assert_eq!(join(&root).await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&root);
    assert!(
        out.contains("then Error::Denied(\"policy `p` allows") && out.contains("(spawn.max-"),
        "the bomb is told why it stopped: {out}"
    );
    assert_eq!(
        started(&events.events(), "root").len(),
        65,
        "the root and the default 64 descendants, no more"
    );
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn children_hold_no_more_memory_than_their_parents_cap() {
    let (rt, events) = runtime_with(64);
    let by = bystander(&rt);
    let run = family_run(&rt);
    let policy = profile(
        "[profiles.p]\nmemory = \"64MiB\"\n[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n",
    );
    // Six children each try to hold 16 MiB at the same time: 96 MiB in all,
    // from a worker allowed 64 MiB.
    let root = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "root",
        &["fan", "6", "hog", "16", "4"],
        &policy,
    );
    assert_eq!(join(&root).await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&root);
    let held = out.matches("exited 0").count();
    let refused = out.matches("exited 4").count();
    assert!(
        (1..=3).contains(&held) && held + refused == 6,
        "at most 3 children of 16 MiB fit in the parent's 64 MiB:\n{out}"
    );
    let peaks: u64 = events
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Exited {
                name, peak_memory, ..
            } if name.starts_with("root") => Some(*peak_memory),
            _ => None,
        })
        .sum();
    assert!(peaks <= 64 << 20, "the family held {peaks} bytes");
    let denied = events.events().iter().any(|e| {
        matches!(e, Event::Denied { name, rule, action, .. }
            if name.starts_with("root/") && rule == "memory" && action.ends_with("(cap 64.0 MiB)"))
    });
    assert!(
        denied,
        "the refused grows are denials naming the family's cap"
    );
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn children_use_no_more_cpu_time_than_their_parents_budget() {
    let (rt, events) = runtime_with(64);
    let by = bystander(&rt);
    let run = family_run(&rt);
    let policy = profile(
        "[profiles.p]\ncpu = \"400ms\"\n[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n",
    );
    let root = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "root",
        &["fan", "4", "spin"],
        &policy,
    );
    // The family spent the root's budget: the root, too, is out of time.
    let out_of_time = |limit_ms| ExitStatus::Killed {
        reason: KillReason::CpuTime { limit_ms },
    };
    assert_eq!(join(&root).await, out_of_time(400));
    // The children end with their parent; wait for their reports.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while exited_under(&events.events(), "root/") < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut used = 0;
    let mut children = 0;
    for event in events.events() {
        if let Event::Exited {
            name,
            status,
            cpu_micros,
            ..
        } = event
            && name.starts_with("root")
        {
            used += cpu_micros;
            if name != "root" {
                children += 1;
                // Out of time, or ended with the root that was.
                assert!(
                    matches!(status, ExitStatus::Killed { .. }),
                    "{name}: {status}"
                );
            }
        }
    }
    assert_eq!(children, 4);
    // Four children with a fresh 400 ms each would use 1.6 s; the slack is
    // the ticks each worker runs before it sees the family's budget spent.
    assert!(used < 600_000, "the family used {used} µs of CPU");
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_named_after_a_pipe_holder_does_not_get_its_end() {
    let (rt, events) = runtime_with(16);
    let run = family_run(&rt);
    let config = PipeConfig {
        ends: Some(["ping".into(), "pong".into()]),
        ..PipeConfig::default()
    };
    run.objects().declare_pipe("chat", config).unwrap();
    let policy = profile(
        "[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n\
         [profiles.p.ipc]\npipes = { chat = [\"*\"] }\n",
    );
    let intruder = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "intruder",
        &["take-pipe", "chat", "pong"],
        &policy,
    );
    assert_eq!(join(&intruder).await, ExitStatus::Exited { code: 0 });
    let out = stdout_of(&intruder);
    assert!(
        out.contains("child pong: ExitStatus::Exited(3)"),
        "the child is `intruder/pong`, which holds no end: {out}"
    );
    assert!(
        out.contains("child x/pong: Error::Invalid(") && out.contains("contains `/`"),
        "a child's own name may not reach outside its parent's: {out}"
    );
    assert_eq!(started(&events.events(), "intruder/"), ["intruder/pong"]);
    // The worker the end was granted to still gets it.
    let pong = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "pong",
        &["open-pipe", "chat"],
        &profile("[profiles.p]\n[profiles.p.ipc]\npipes = { chat = [\"*\"] }\n"),
    );
    assert_eq!(join(&pong).await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&pong), "opened\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_does_not_outlive_its_parents_wall_time() {
    let (rt, events) = runtime_with(64);
    let by = bystander(&rt);
    let run = family_run(&rt);
    let policy = profile(
        "[profiles.p]\ntimeout = \"2s\"\n[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n",
    );
    let root = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "root",
        &["fan", "1", "hog", "1", "60"],
        &policy,
    );
    let out_of_time = |limit_ms| ExitStatus::Killed {
        reason: KillReason::WallTime { limit_ms },
    };
    assert_eq!(join(&root).await, out_of_time(2000));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let child = loop {
        let found = events.events().into_iter().find_map(|e| match e {
            Event::Exited {
                name,
                status,
                micros,
                ..
            } if name == "root/c0" => Some((status, micros)),
            _ => None,
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "root/c0 never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Its own wall-time limit, what its parent had left when it started:
    // without it, the child would have been terminated with its parent.
    match child {
        (
            ExitStatus::Killed {
                reason: KillReason::WallTime { limit_ms },
            },
            micros,
        ) => {
            assert!(limit_ms > 0 && limit_ms < 2000, "{limit_ms} ms");
            // Its limit, plus the moments it takes to stop a worker.
            assert!(
                micros < limit_ms * 1000 + 500_000,
                "the child ran {micros} µs"
            );
        }
        other => panic!("root/c0: {other:?}"),
    }
    bystander_ok(by).await;
}

/// A child is its parent's to supervise: a parent under a restart policy
/// passes neither the policy nor its restart count on to its children.
#[tokio::test(flavor = "multi_thread")]
async fn children_do_not_inherit_their_parents_restart_policy() {
    use corral::restart::{Restart, RestartPolicy};
    let (rt, events) = runtime_with(16);
    let run = family_run(&rt);
    let mut spec = WorkerSpec::new("root")
        .args(["fan", "1", "fail-if-set", "CORRAL_RESTARTS"])
        .stdio(Stdio::Capture)
        .restart(RestartPolicy {
            when: Restart::OnFailure,
            backoff: Duration::ZERO,
            ..RestartPolicy::DEFAULT
        })
        .run(&run);
    profile("[profiles.p.spawn]\ncomponents = [\"hostile-family\"]\n").apply_to(&mut spec);
    let root = rt.spawn(&load(&rt, "hostile-family"), spec);
    assert_eq!(join(&root).await, ExitStatus::Exited { code: 0 });
    assert_eq!(
        stdout_of(&root),
        "c0: exited 0\n",
        "the child saw no restart count"
    );
    let restarted = events
        .events()
        .iter()
        .any(|e| matches!(e, Event::Restarting { .. }));
    assert!(!restarted, "nobody was restarted");
}
