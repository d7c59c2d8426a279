//! Policies enforced on real guests, and the hostile-guest suite: for each
//! abuse, the host stays up, the other workers are unaffected, and the
//! status or a denial event names the rule.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{denials, guest, load, profile, runtime_with, spawn_under, stdout_of};
use corral::ipc::QueueConfig;
use corral::policy::Profile;
use corral::{Event, ExitStatus, KillReason, Run, Runtime, Stdio, Worker, WorkerSpec};

/// A bystander that must be unaffected by whatever the hostile worker does.
fn bystander(rt: &Runtime) -> Worker {
    rt.spawn(
        &load(rt, "sleepy"),
        WorkerSpec::new("bystander")
            .args(["300"])
            .stdio(Stdio::Capture),
    )
}

async fn bystander_ok(worker: Worker) {
    assert_eq!(
        worker.join().await,
        ExitStatus::Exited { code: 0 },
        "the bystander was affected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_is_killed_by_the_memory_rule() {
    let (rt, events) = runtime_with(16);
    let by = bystander(&rt);
    let policy = profile("[profiles.p]\nmemory = \"32MiB\"\n");
    let w = spawn_under(&rt, &Run::new(), "alloc", "bomb", &["4096"], &policy);
    match w.join().await {
        ExitStatus::Killed {
            reason: KillReason::Memory { limit, .. },
        } => assert_eq!(limit, 32 << 20),
        other => panic!("{other:?}"),
    }
    let denied = denials(&events.events(), "bomb");
    assert_eq!(
        denied.len(),
        1,
        "one event, not one per refused grow: {denied:?}"
    );
    assert_eq!(denied[0].0, "memory");
    assert!(denied[0].1.ends_with("(cap 32.0 MiB)"), "{denied:?}");
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_loop_and_deep_recursion_end_only_themselves() {
    let (rt, _) = runtime_with(16);
    let by = bystander(&rt);
    let policy = profile("[profiles.p]\ncpu = \"100ms\"\n");
    let spin = spawn_under(&rt, &Run::new(), "spin", "spin", &[], &policy);
    assert_eq!(
        spin.join().await,
        ExitStatus::Killed {
            reason: KillReason::CpuTime { limit_ms: 100 }
        }
    );
    let deep = spawn_under(&rt, &Run::new(), "trap", "deep", &["overflow"], &policy);
    let status = deep.join().await;
    assert!(status.to_string().contains("stack overflow"), "{status}");
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_flood_stops_at_capacity() {
    let (rt, _) = runtime_with(16);
    let run = Run::new();
    run.objects()
        .declare_queue(
            "q",
            QueueConfig {
                capacity: 500,
                ..QueueConfig::default()
            },
        )
        .unwrap();
    let policy = profile("[profiles.p.ipc]\nqueues = { q = [\"put\"] }\n");
    let w = spawn_under(
        &rt,
        &run,
        "hostile",
        "flood",
        &["queue-flood", "q"],
        &policy,
    );
    assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(
        stdout_of(&w),
        "the queue took 500 messages, then said full\n"
    );
    assert_eq!(run.objects().queue("q").unwrap().len().await, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_flood_is_truncated_with_a_notice_and_the_worker_goes_on() {
    let (rt, events) = runtime_with(16);
    let policy = profile("[profiles.p]\nstdout = \"64KiB\"\n");
    let w = spawn_under(
        &rt,
        &Run::new(),
        "hostile",
        "flood",
        &["stdout-flood", "10000000"],
        &policy,
    );
    assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(w.stdout().len(), 64 << 10, "exactly the cap passed on");
    assert!(String::from_utf8_lossy(&w.stderr()).starts_with("done after"));
    let denied = denials(&events.events(), "flood");
    assert_eq!(
        denied,
        [(
            "output.stdout".to_string(),
            "writing past 64.0 KiB of stdout".to_string()
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ungranted_socket_and_host_environment_stay_out_of_reach() {
    let (rt, events) = runtime_with(16);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let granted = profile(&format!(
        "[profiles.p.network]\nconnect = [\"127.0.0.1:{port}\"]\n"
    ));
    let ok = spawn_under(
        &rt,
        &Run::new(),
        "hostile",
        "ok",
        &["connect", &format!("127.0.0.1:{port}")],
        &granted,
    );
    assert_eq!(ok.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&ok), format!("connected to 127.0.0.1:{port}\n"));
    let other = format!("127.0.0.1:{}", port.wrapping_add(1).max(1));
    let no = spawn_under(
        &rt,
        &Run::new(),
        "hostile",
        "no",
        &["connect", &other],
        &granted,
    );
    assert_eq!(no.join().await, ExitStatus::Exited { code: 0 });
    assert!(
        stdout_of(&no).contains("PermissionDenied"),
        "{}",
        stdout_of(&no)
    );
    assert_eq!(
        denials(&events.events(), "no"),
        [("network.connect".into(), format!("tcp connect {other}"))]
    );
    // SAFETY of the test: PATH is set in every environment cargo runs in.
    let env = spawn_under(
        &rt,
        &Run::new(),
        "hostile",
        "env",
        &["env", "PATH"],
        &profile("[profiles.p]\n"),
    );
    env.join().await;
    assert_eq!(stdout_of(&env), "PATH is not visible\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn path_escapes_fail_inside_the_mount() {
    let (rt, _) = runtime_with(16);
    let policy = profile("[profiles.p]\nmounts = [\"@scratch:/data\"]\n");
    for path in [
        "/data/../../etc/passwd",
        "/etc/passwd",
        "/data/../data/../..",
    ] {
        let w = spawn_under(
            &rt,
            &Run::new(),
            "hostile",
            "escape",
            &["escape", path],
            &policy,
        );
        assert_eq!(w.join().await, ExitStatus::Exited { code: 0 });
        let out = stdout_of(&w);
        assert!(!out.starts_with("read "), "{path}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_holder_that_spins_is_killed_and_the_lock_freed() {
    let (rt, _) = runtime_with(16);
    let run = Run::new();
    run.objects().declare_lock("l", false).unwrap();
    let policy =
        profile("[profiles.p]\ncpu = \"150ms\"\n[profiles.p.ipc]\nlocks = { l = [\"acquire\"] }\n");
    let spinner = spawn_under(
        &rt,
        &run,
        "hostile",
        "spinner",
        &["lock-spin", "l"],
        &policy,
    );
    let status = spinner.join().await;
    assert!(
        matches!(
            status,
            ExitStatus::Killed {
                reason: KillReason::CpuTime { .. }
            }
        ),
        "{status:?}"
    );
    let lock = run.objects().lock("l").unwrap();
    let guard = lock
        .acquire(99, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(guard.previous_owner_died());
    guard.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipc_grants_are_checked_per_object_and_operation() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    run.objects()
        .declare_queue("jobs", QueueConfig::default())
        .unwrap();
    run.objects()
        .declare_queue("secret", QueueConfig::default())
        .unwrap();
    let policy = profile("[profiles.p.ipc]\nqueues = { jobs = [\"get\"] }\n");
    let w = spawn_under(
        &rt,
        &run,
        "ipc-probe",
        "reader",
        &["put-big", "jobs", "4"],
        &policy,
    );
    w.join().await;
    assert!(
        stdout_of(&w).starts_with("Err(Error::Denied("),
        "{}",
        stdout_of(&w)
    );
    let w = spawn_under(
        &rt,
        &run,
        "ipc-probe",
        "snoop",
        &["open-queue", "secret"],
        &policy,
    );
    w.join().await;
    assert!(
        stdout_of(&w).contains("grants no access to queue `secret`"),
        "{}",
        stdout_of(&w)
    );
    let rules: Vec<String> = denials(&events.events(), "snoop")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(rules, ["ipc.queues"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deterministic_mode_replays_clock_and_randomness() {
    let (rt, _) = runtime_with(16);
    let policy =
        profile("[profiles.p.deterministic]\nseed = 7\nstart = \"2024-01-01T00:00:00Z\"\n");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let w = spawn_under(
            &rt,
            &Run::new(),
            "policy-probe",
            "replay",
            &["time", "random"],
            &policy,
        );
        w.join().await;
        outputs.push(stdout_of(&w));
    }
    assert_eq!(outputs[0], outputs[1], "same seed, same run");
    // 2024-01-01T00:00:00Z is 1704067200 s after the epoch.
    assert!(
        outputs[0].contains("\"detail\": \"1704067200"),
        "{}",
        outputs[0]
    );
    let plain = spawn_under(
        &rt,
        &Run::new(),
        "policy-probe",
        "real",
        &["random"],
        &profile("[profiles.p]\n"),
    );
    plain.join().await;
    let again = spawn_under(
        &rt,
        &Run::new(),
        "policy-probe",
        "real",
        &["random"],
        &profile("[profiles.p]\n"),
    );
    again.join().await;
    assert_ne!(
        stdout_of(&plain),
        stdout_of(&again),
        "without the mode, randomness is random"
    );
}

#[test]
fn policy_test_command_reports_every_capability() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[profiles.strict]\nmemory = \"16MiB\"\ncpu = \"100ms\"\nmounts = [\"@scratch:/tmp:ro\"]\n\
         [profiles.strict.network]\nconnect = [\"127.0.0.1:8000\"]\n\
         [profiles.strict.ipc]\nqueues = { jobs = [\"get\"] }\n",
    )
    .unwrap();
    let corral = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("--cache-dir")
            .arg(common::shared_cache_dir())
            .args(args)
            .output()
            .unwrap()
    };
    let out = corral(&["policy", "test", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let observed = |check: &str| {
        results
            .iter()
            .find(|r| r["check"] == check)
            .unwrap_or_else(|| panic!("no {check}"))["observed"]
            .clone()
    };
    assert_eq!(observed("fs-write:/tmp"), "denied");
    assert_eq!(observed("connect:127.0.0.1:8000"), "allowed");
    assert_eq!(observed("connect:127.0.0.1:1"), "denied");
    assert_eq!(observed("ipc:queue:jobs:put"), "denied");
    assert_eq!(observed("cpu:3000"), "killed");
    // An author who expected otherwise gets exit 1 and a ✗.
    let expect = dir.path().join("expect.toml");
    std::fs::write(&expect, "[expect]\n\"ipc:queue:jobs:put\" = \"allowed\"\n").unwrap();
    let out = corral(&[
        "policy",
        "test",
        file.to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("✗  put queue `jobs`"), "{table}");
    assert!(table.contains("1 not as expected"), "{table}");
    assert!(guest("hostile").exists());
}

/// `corral policy test` prints each row as its check ends, so a long
/// wall-time check does not hold up the others, and its table shows (and
/// tries one past) the ledger's and the family's counted limits.
#[test]
fn policy_test_prints_rows_as_they_finish_and_proves_counted_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[profiles.p]\nmemory = \"64MiB\"\ntimeout = \"8s\"\nmax-handles = 300\nmax-host-fds = 40\n\
         mounts = [\"@scratch:/tmp\", \"./data:/data:rw\"]\n\
         [profiles.p.spawn]\ncomponents = [\"child\"]\nmax-children = 3\nmax-descendants = 5\n",
    )
    .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .current_dir(dir.path())
        .arg("--cache-dir")
        .arg(common::shared_cache_dir())
        .args(["policy", "test", "p.toml"]);
    let started = std::time::Instant::now();
    let mut probe = common::child::Bounded::spawn(&mut command, b"", Duration::from_secs(120));
    let limits = probe.wait_for_line(|l| l.contains("max-host-fds"));
    assert!(limits.contains("40 host descriptors"), "{limits}");
    probe.wait_for_line(|l| l.contains("read mount /tmp"));
    let first_row = started.elapsed();
    let out = probe.finish();
    let total = started.elapsed();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        total >= Duration::from_secs(8) && first_row + Duration::from_secs(4) < total,
        "the first row came after {first_row:?}, the run took {total:?}"
    );
    for (row, detail) in [
        ("handles:/tmp:300", "open files"),
        ("host-fds:/data:40", "open files"),
        ("scratch-bytes:/tmp:67108864", "No space left"),
        ("children:child:3", "refused with 3 alive"),
        ("descendants:child:5", "refused after 5 spawned"),
        ("sleep:16000", "wall-time limit"),
    ] {
        let line = table
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no row {row}: {table}"));
        assert!(line.starts_with('✓') && line.contains(detail), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_is_a_deterministic_budget() {
    let (rt, _) = runtime_with(16);
    let policy = profile("[profiles.p]\nfuel = 20_000_000\n");
    let spin = spawn_under(&rt, &Run::new(), "spin", "spin", &[], &policy);
    assert_eq!(
        spin.join().await,
        ExitStatus::Killed {
            reason: KillReason::Fuel { limit: 20_000_000 }
        }
    );
    // A run that needs less fuel than the budget finishes, and the same
    // bounded loop takes the same fuel every time: both runs end alike.
    for _ in 0..2 {
        let bounded = spawn_under(&rt, &Run::new(), "spin", "bounded", &["1000"], &policy);
        assert_eq!(bounded.join().await, ExitStatus::Exited { code: 0 });
    }
    let stack = profile("[profiles.p]\nstack = \"256KiB\"\n");
    let hello = spawn_under(&rt, &Run::new(), "hello", "small-stack", &[], &stack);
    assert_eq!(hello.join().await, ExitStatus::Exited { code: 0 });
}

/// A preview1 command that grows its table `times` times by `step`
/// elements: exit 0 if every grow was granted, 1 at the first refusal.
fn table_grower(dir: &Path, step: u32, times: u32) -> std::path::PathBuf {
    let wat = format!(
        r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (table $t 1 funcref)
        (func (export "_start")
            (local $i i32)
            (loop $more
                (if (i32.eq (table.grow $t (ref.null func) (i32.const {step})) (i32.const -1))
                    (then (call $exit (i32.const 1))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $more (i32.lt_u (local.get $i) (i32.const {times}))))
            (call $exit (i32.const 0))))"#
    );
    let path = dir.join(format!("table-{step}x{times}.wat"));
    std::fs::write(&path, wat).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn table_growth_is_charged_to_the_memory_cap() {
    let (rt, events) = runtime_with(16);
    let by = bystander(&rt);
    let dir = tempfile::tempdir().unwrap();
    let run_under = |path: std::path::PathBuf, name: &str, policy: &Profile| {
        let program = rt.load(&path).unwrap();
        let mut spec = WorkerSpec::new(name).stdio(Stdio::Capture);
        policy.apply_to(&mut spec);
        rt.spawn(&program, spec)
    };
    // What the module holds before it grows its table: the cap leaves it
    // 64 KiB more.
    let idle = run_under(
        table_grower(dir.path(), 0, 1),
        "idle",
        &profile("[profiles.p]\n"),
    );
    assert_eq!(idle.join().await, ExitStatus::Exited { code: 0 });
    let base = idle.wait_report().await.peak_memory;
    let cap = profile(&format!(
        "[profiles.p]\nmemory = \"{}KiB\"\n",
        (base >> 10) + 64
    ));
    // Default engine: 4,000 elements (32 KB) fit, 16,000 (128 KB) do not.
    let small = run_under(table_grower(dir.path(), 4_000, 1), "small", &cap);
    assert_eq!(small.join().await, ExitStatus::Exited { code: 0 });
    let big = run_under(table_grower(dir.path(), 16_000, 1), "big", &cap);
    assert_eq!(big.join().await, ExitStatus::Exited { code: 1 });
    // A fuel engine allocates tables on demand, with no ceiling of its own:
    // 16 grows of a million elements would hold 128 MiB uncharged.
    let fuel = profile("[profiles.p]\nmemory = \"4MiB\"\nfuel = 1_000_000_000\n");
    let huge = run_under(table_grower(dir.path(), 1 << 20, 16), "huge", &fuel);
    assert_eq!(huge.join().await, ExitStatus::Exited { code: 1 });
    for name in ["big", "huge"] {
        let denied = denials(&events.events(), name);
        assert!(
            denied.len() == 1 && denied[0].0 == "memory" && denied[0].1.contains("a table"),
            "{name}: {denied:?}"
        );
    }
    bystander_ok(by).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_loop_is_summarized_not_sent_one_by_one() {
    let (rt, events) = runtime_with(16);
    let by = bystander(&rt);
    let run = Run::new();
    run.objects()
        .declare_queue("forbidden", QueueConfig::default())
        .unwrap();
    let looper = spawn_under(
        &rt,
        &run,
        "hostile-family",
        "looper",
        &["denied-opens", "50000"],
        &profile("[profiles.p]\n"),
    );
    assert_eq!(looper.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&looper), "50000 of 50000 opens denied\n");
    let events = events.events();
    let sent = denials(&events, "looper").len() as u64;
    let suppressed: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::Suppressed { name, denials, .. } if name == "looper" => Some(*denials),
            _ => None,
        })
        .sum();
    assert_eq!(sent + suppressed, 50_000, "every denial is counted");
    let secs = looper.wait_report().await.duration.as_secs() + 1;
    assert!(
        sent <= 20 + 10 * secs,
        "{sent} denial events in about {secs} s"
    );
    bystander_ok(by).await;
}
