//! Supervisor groups (issue 17), end to end through `corral up`: a
//! three-stage pipeline over acknowledged queues whose middle stage traps
//! once, under `rest-for-one` and `one-for-all`, on the local and the Redis
//! backend, must still deliver every item exactly once; and nested groups
//! that pass their intensity fail upward until the top one gives up; and a
//! pipe end that goes back to its restarted worker.

mod common;

use std::process::Output;
use std::time::Duration;

use common::child::output_within;
use common::{g, shared_cache_dir, text};
use serde_json::Value;

/// Every wait has this deadline.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `corral GLOBAL... up` on `manifest` in a fresh directory.
fn corral_up(global: &[&str], manifest: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), manifest).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .current_dir(dir.path())
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(global)
        .args(["up", "m.toml"])
        .env("RUST_BACKTRACE", "1");
    output_within(&mut command, b"", DEADLINE)
}

/// Runs `corral --events json up` on `manifest` in a fresh directory.
fn up(manifest: &str) -> (Output, Vec<Value>) {
    let out = corral_up(&["--events", "json"], manifest);
    let events = text(&out.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    (out, events)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The workers that got a `restarting` event, in order.
fn restarted(events: &[Value]) -> Vec<String> {
    of_kind(events, "restarting")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// A 20-item pipeline: `source` → `a` → `square` (traps on item 5 on its
/// first start) → `b` → `sink`, both queues acknowledged and small, so the
/// source is still producing when the square traps. `backend` is a
/// `[backend]` table or nothing.
fn pipeline(strategy: &str, members: &str, backend: &str) -> String {
    let stage = g("stage");
    format!(
        r#"{backend}
[queues.a]
capacity = 2
acknowledged = true
[queues.b]
capacity = 2
acknowledged = true

[[group]]
name = "pipeline"
strategy = "{strategy}"
members = {members}
backoff = "0s"

[[worker]]
name = "source"
component = "{stage}"
args = ["source", "a", "20"]
mounts = ["@shared:/"]
[[worker]]
name = "square"
component = "{stage}"
args = ["square", "a", "b", "5"]
[[worker]]
name = "sink"
component = "{stage}"
args = ["sink", "b"]
mounts = ["@shared:/"]
"#
    )
}

/// Sum of i*i for i in 0..20.
const SUM: u64 = 2470;

fn assert_exact_output(out: &Output) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("[sink] sink: 20 items, sum {SUM}")),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("[square] square: failing on 5"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn the_group_restarted(events: &[Value], members: &[&str]) {
    let group = of_kind(events, "group-restarting");
    assert_eq!(group.len(), 1, "{events:#?}");
    assert_eq!(group[0]["group"], "pipeline");
    assert_eq!(group[0]["cause"], "square");
    assert_eq!(group[0]["status"]["kind"], "trapped");
    assert_eq!(group[0]["members"], serde_json::json!(members));
    let mut got = restarted(events);
    got.sort();
    let mut wanted: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    wanted.sort();
    assert_eq!(got, wanted, "{events:#?}");
}

#[test]
fn rest_for_one_restarts_the_later_stages_and_the_output_is_exact() {
    let (out, events) = up(&pipeline(
        "rest-for-one",
        r#"["source", "square", "sink"]"#,
        "",
    ));
    assert_exact_output(&out);
    the_group_restarted(&events, &["square", "sink"]);
    // The sink's cut-short start is told why it restarted.
    let sink = of_kind(&events, "restarting")
        .into_iter()
        .find(|e| e["name"] == "sink")
        .unwrap();
    assert_eq!(sink["status"]["reason"]["cause"], "group-restart");
    assert_eq!(sink["status"]["reason"]["failed"], "square");
    // The source was left alone: it produced everything in one start.
    assert!(
        text(&out.stdout).contains("[source] source: produced 20 (this start from 0)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn one_for_all_restarts_every_stage_and_the_output_is_exact() {
    let (out, events) = up(&pipeline(
        "one-for-all",
        r#"["source", "square", "sink"]"#,
        "",
    ));
    assert_exact_output(&out);
    the_group_restarted(&events, &["source", "square", "sink"]);
    // The restarted source went on from where it was, not from 0: it was
    // blocked on the full queue when the square trapped.
    let stdout = text(&out.stdout);
    let from: u64 = stdout
        .split("source: produced 20 (this start from ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((5..20).contains(&from), "{stdout}");
    let summary = text(&out.stderr);
    let exited = of_kind(&events, "exited");
    let restarts: u64 = exited.iter().map(|e| e["restarts"].as_u64().unwrap()).sum();
    assert_eq!(restarts, 3, "{summary}");
}

#[test]
fn under_redis_the_pipeline_restarts_and_the_output_is_exact() {
    let redis = common::redis::Redis::start();
    let backend = format!(
        "[backend]\nurl = \"{}\"\nnamespace = \"groups\"\nlease = \"2s\"\n",
        redis.url()
    );
    let (out, events) = up(&pipeline(
        "rest-for-one",
        r#"["source", "square", "sink"]"#,
        &backend,
    ));
    assert_exact_output(&out);
    the_group_restarted(&events, &["square", "sink"]);
}

#[test]
fn a_nested_group_fails_upward_and_the_top_gives_up_with_a_clear_summary() {
    let manifest = format!(
        r#"
[[group]]
name = "outer"
members = ["steady", "inner"]
max-restarts = 1
backoff = "0s"

[[group]]
name = "inner"
strategy = "one-for-all"
members = ["bad", "peer"]
max-restarts = 1
backoff = "0s"

[[worker]]
name = "steady"
component = "{sleepy}"
[[worker]]
name = "bad"
component = "{comeback}"
args = ["99", "exit"]
[[worker]]
name = "peer"
component = "{sleepy}"
"#,
        sleepy = g("sleepy"),
        comeback = g("comeback"),
    );
    let (out, events) = up(&manifest);
    let stderr = text(&out.stderr);
    // The run's status is the failing worker's (exit 1), not the stopped
    // members'.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let sequence: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "group-restarting" || e["event"] == "group-gave-up")
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["group"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        sequence,
        [
            "group-restarting inner",
            "group-gave-up inner",
            "group-restarting outer",
            "group-restarting inner",
            "group-gave-up inner",
            "group-gave-up outer",
        ],
        "{stderr}"
    );
    let exited = |name: &str| {
        of_kind(&events, "exited")
            .into_iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {stderr}"))
            .clone()
    };
    assert_eq!(exited("bad")["status"]["kind"], "exited");
    assert_eq!(exited("bad")["restarts"], 3);
    for stopped in ["steady", "peer"] {
        assert_eq!(
            exited(stopped)["status"]["reason"]["cause"],
            "group-gave-up"
        );
        assert_eq!(exited(stopped)["status"]["reason"]["group"], "outer");
    }
    // The steady member was never restarted: one-for-one at the top.
    assert_eq!(exited("steady")["restarts"], 0);

    // Without --events json, the terminal says the same in words.
    let out = corral_up(&[], &manifest);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for line in [
        "corral: group inner (one-for-all): bad exited 1; restart 1 of bad",
        "corral: group outer gave up after 1 restarts (at most 1 within 60 s); the last: bad failed",
        "stopped: its group `outer` gave up",
        "corral: 3 workers, 0 exited 0, 3 failed, ",
    ] {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
}

/// A pipe between a client and an echo worker that traps once, holding a
/// message: with `regrant`, the restarted echo worker gets its end back
/// and the client never sees the pipe closed (it sends the lost message
/// again); without it, the client sees `closed`.
#[test]
fn a_regranted_pipe_end_goes_back_to_the_restarted_worker() {
    let manifest = |regrant: bool| {
        format!(
            r#"
[pipes.chat]
ends = ["client", "echo"]
regrant = {regrant}

[[worker]]
name = "echo"
component = "{stage}"
args = ["pipe-echo", "chat", "4"]
restart = "on-failure"
backoff = "0s"
[[worker]]
name = "client"
component = "{stage}"
args = ["pipe-client", "chat", "10"]
"#,
            stage = g("stage")
        )
    };
    let (out, events) = up(&manifest(true));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[echo] pipe-echo: failing on 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[client] pipe-client: 10 echoed, 1 sent again"),
        "{stdout}"
    );
    assert_eq!(restarted(&events), ["echo"]);

    let (out, _) = up(&manifest(false));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The client dies of it (the guest's `or_die` exits 2).
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("[client] recv: Error::Closed"), "{stderr}");
}
