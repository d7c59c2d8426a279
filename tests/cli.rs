//! The `corral` binary as a user runs it: output, exit codes and messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::child::{Bounded, output_within};
use common::{g, shared_cache_dir, text};

/// How long one `corral` command may run before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(120);

fn corral_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .arg("--max-workers")
        .arg("64")
        .args(args)
        // Users never see the host's Rust backtrace, even with this set.
        .env("RUST_BACKTRACE", "1");
    command
}

fn corral(args: &[&str]) -> Output {
    output_within(&mut corral_command(args), b"", PATIENCE)
}

/// `/` is reserved for spawned children (`parent/child`): a top-level
/// name with one could be taken by some worker's child, pipe ends and all.
#[test]
fn run_refuses_a_name_a_child_could_take() {
    for name in ["a/b", "", "two words"] {
        let out = corral(&["run", "--name", name, &g("hello")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("contain no spaces, control characters or `/`"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn run_passes_args_and_prefixes_output_only_when_asked() {
    let out = corral(&["run", &g("hello"), "--", "a", "b"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello from hello (worker 1), args: [\"a\", \"b\"]\n"
    );
    let out = corral(&["run", &g("hello"), "--prefix"]);
    assert_eq!(
        text(&out.stdout),
        "[hello] hello from hello (worker 1), args: []\n"
    );
    assert_eq!(
        text(&out.stderr),
        "",
        "a single successful worker prints no summary"
    );
}

#[test]
fn run_count_names_copies_and_reports_each() {
    let out = corral(&["run", &g("hello"), "-n", "3", "--name", "w"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for name in ["w-1", "w-2", "w-3"] {
        assert!(
            stdout.contains(&format!("[{name}] hello from {name} ")),
            "{stdout}"
        );
    }
    let stderr = text(&out.stderr);
    assert!(stderr.contains("w-2  exited 0"), "{stderr}");
    assert!(
        stderr.contains("corral: 3 workers, 3 exited 0, 0 failed"),
        "{stderr}"
    );
}

#[test]
fn exit_codes_follow_the_documented_table() {
    assert_eq!(
        corral(&["run", &g("exit-code"), "--", "7"]).status.code(),
        Some(7)
    );
    assert_eq!(corral(&["run", &g("trap")]).status.code(), Some(134));
    assert_eq!(
        corral(&["run", &g("spin"), "--cpu", "100ms"]).status.code(),
        Some(137)
    );
    assert_eq!(
        corral(&["run", &g("sleepy"), "--timeout", "100ms"])
            .status
            .code(),
        Some(137)
    );
    assert_eq!(corral(&["run", "/nonexistent.wasm"]).status.code(), Some(2));
    assert_eq!(
        corral(&["run", &g("hello"), "--memory", "lots"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn trap_shows_the_wasm_backtrace_never_the_hosts() {
    let out = corral(&["run", &g("trap")]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("trapped: wasm `unreachable` instruction executed"),
        "{stderr}"
    );
    assert!(stderr.contains("wasm backtrace:"), "{stderr}");
    assert!(stderr.contains("0: trap::hit_unreachable"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(!stderr.contains("host/src"), "{stderr}");
}

#[test]
fn bad_input_gets_one_clear_paragraph() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tool.wasm");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let out = corral(&["run", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("corral: "), "{stderr}");
    assert!(
        stderr.contains("is not a WebAssembly file: it looks like a script"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn thread_count_from_the_flag_or_the_environment_and_bad_values_rejected() {
    let out = corral(&["--threads", "1", "run", &g("hello"), "-n", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 4);

    let out = corral(&["--threads", "0", "run", &g("hello")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--threads"),
        "{}",
        text(&out.stderr)
    );

    for bad in ["", "abc", "0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(["--cache-dir", &shared_cache_dir().display().to_string()])
            .args(["--max-workers", "64", "run", &g("hello")])
            .env("TOKIO_WORKER_THREADS", bad)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("running corral");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "corral: TOKIO_WORKER_THREADS must be a number of threads above 0, not `{bad}`\n"
            )
        );
    }
}

#[test]
fn env_passes_only_what_is_listed() {
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--cache-dir"])
        .arg(shared_cache_dir())
        .args(["run", &g("hello-p1"), "--env", "GREETING"])
        .env("GREETING", "from the host")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("GREETING=from the host"));
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["run", &g("hello-p1"), "--env", "CORRAL_SURELY_UNSET"])
        .env_remove("CORRAL_SURELY_UNSET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the host has no variable CORRAL_SURELY_UNSET"));
}

#[test]
fn events_json_reports_lifecycle_and_cache() {
    let out = corral(&["--events", "json", "run", &g("hello"), "-n", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "started").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "exited").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds[0], "loaded");
    let exited = events.iter().find(|e| e["event"] == "exited").unwrap();
    assert_eq!(exited["status"]["kind"], "exited");
    assert_eq!(exited["status"]["code"], 0);
    assert!(exited["peak_memory"].as_u64().unwrap() > 0);
}

#[test]
fn compile_warms_the_cache_for_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().to_str().unwrap();
    let compile = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--cache-dir", cache, "compile", &g("sleepy")])
        .output()
        .unwrap();
    assert_eq!(compile.status.code(), Some(0));
    assert!(
        text(&compile.stderr).contains("compiled in"),
        "{}",
        text(&compile.stderr)
    );
    let run = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args([
            "--cache-dir",
            cache,
            "--events",
            "json",
            "run",
            &g("sleepy"),
            "--",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        text(&run.stderr).contains(r#""cache":"hit""#),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn up_runs_a_manifest_and_errors_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("corral.toml");
    std::fs::write(
        &manifest,
        format!(
            "[defaults]\ntimeout = \"10s\"\n\n[[worker]]\nname = \"hi\"\ncomponent = {:?}\ncount = 10\n\n\
             [[worker]]\nname = \"code\"\ncomponent = {:?}\nargs = [\"5\"]\n",
            g("hello"),
            g("exit-code")
        ),
    )
    .unwrap();
    let out = corral(&["up", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "the failing worker's code");
    let stdout = text(&out.stdout);
    for i in 1..=10 {
        assert!(
            stdout.contains(&format!("[hi-{i}] hello from hi-{i} ")),
            "{stdout}"
        );
    }
    assert!(text(&out.stderr).contains("corral: 11 workers, 10 exited 0, 1 failed"));

    std::fs::write(
        &manifest,
        "[[worker]]\nname = \"x\"\ncomponent = \"x.wasm\"\ncont = 3\n",
    )
    .unwrap();
    let out = corral(&["up", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("unknown field `cont`"), "{stderr}");

    std::fs::write(
        &manifest,
        "[[worker]]\nname = \"x\"\ncomponent = \"missing.wasm\"\n",
    )
    .unwrap();
    let out = corral(&["up", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("worker `x`: cannot read"), "{stderr}");
    assert!(stderr.contains("missing.wasm"), "{stderr}");
}

#[test]
fn inspect_lists_imports_with_verdicts() {
    let out = corral(&["inspect", &g("hello")]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": component\n"), "{stdout}");
    assert!(
        stdout.contains("fits corral:worker/worker: yes"),
        "{stdout}"
    );
    assert!(stdout.contains("✓ corral:worker/process@0.1.0"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("needy.wat");
    std::fs::write(
        &path,
        r#"(component (import "acme:db/query@1.0.0" (instance)))"#,
    )
    .unwrap();
    let stdout = text(&corral(&["inspect", path.to_str().unwrap()]).stdout);
    assert!(stdout.contains("✗ acme:db/query@1.0.0"), "{stdout}");
    assert!(stdout.contains("fits corral:worker/worker: no"), "{stdout}");
    let json = corral(&["inspect", "--json", &g("hello-p1")]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["kind"], "core-module");
    assert_eq!(value["fits_worker"], true);
    assert!(Path::new(&g("hello-p1")).exists());
}

fn corral_stdin(args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args);
    output_within(&mut command, stdin.as_bytes(), PATIENCE)
}

#[test]
fn pool_squares_lines_in_order_and_summarises() {
    let input: String = (1..=100).map(|i| format!("{i}\n")).collect();
    let out = corral_stdin(
        &["pool", &g("square"), "--workers", "4", "--chunk", "3"],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected: String = (1..=100u64).map(|i| format!("{}\n", i * i)).collect();
    assert_eq!(text(&out.stdout), expected);
    assert!(
        text(&out.stderr).contains("corral: 100 tasks: 100 done, 0 failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn pool_reports_failed_tasks_and_bad_lines_by_number() {
    let out = corral_stdin(&["pool", &g("flaky"), "--workers", "1"], "a\ntrap\nb\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "a\nb\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("corral: line 2: task failed: trapped: wasm `unreachable`"),
        "{stderr}"
    );
    let out = corral_stdin(&["pool", &g("flaky"), "--json"], "\"x\"\n{oops\n[1, 2]\n");
    assert_eq!(out.status.code(), Some(2), "bad input lines");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("corral: input line 2: not valid JSON"),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0], serde_json::json!({"line": 1, "ok": "x"}));
    assert_eq!(lines[1], serde_json::json!({"line": 3, "ok": [1, 2]}));
}

#[test]
fn pool_unordered_writes_every_result() {
    let input: String = (1..=50).map(|i| format!("{i}\n")).collect();
    let out = corral_stdin(
        &["pool", &g("square"), "--unordered", "--workers", "3"],
        &input,
    );
    assert_eq!(out.status.code(), Some(0));
    let mut got: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (1..=50u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn shared_tree_is_seeded_and_saved_even_when_a_worker_fails() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    let out = dir.path().join("out");
    std::fs::create_dir_all(seed.join("sub")).unwrap();
    std::fs::write(seed.join("sub/before.txt"), "from the host\n").unwrap();
    let manifest = dir.path().join("corral.toml");
    std::fs::write(
        &manifest,
        format!(
            "[locks.file]\n\
             [filesystem]\nfrom = \"seed\"\nsave = \"out\"\n\n\
             [[worker]]\nname = \"writer\"\ncomponent = {:?}\nargs = [\"/sub/log.txt\", \"file\", \"3\"]\nmounts = [\"@shared:/\"]\n\n\
             [[worker]]\nname = \"crash\"\ncomponent = {:?}\n",
            g("appender"),
            g("trap"),
        ),
    )
    .unwrap();
    let run = corral(&["up", manifest.to_str().unwrap()]);
    assert_eq!(
        run.status.code(),
        Some(134),
        "the trap decides the exit code"
    );
    assert!(text(&run.stderr).contains(&format!("saved the shared tree to {}", out.display())));
    assert_eq!(
        std::fs::read_to_string(out.join("sub/before.txt")).unwrap(),
        "from the host\n"
    );
    let log = std::fs::read_to_string(out.join("sub/log.txt")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.starts_with("writer:000000:"), "{log}");
}

/// Starts three `sleepy` workers (each sleeps an hour) on a shared tree
/// saved to `out`, and returns once `awake` of them have said they sleep.
/// With `sigint_ignored`, the child starts with SIGINT ignored, as a job
/// started in the background by a non-interactive shell does: a SIGINT that
/// reaches no listener of corral's is then lost instead of killing it.
fn sleepers(out: &Path, awake: usize, sigint_ignored: bool) -> Bounded {
    use std::os::unix::process::CommandExt;
    // No grace period: `sleepy` does not listen for `shutdown-requested`
    // (tests/supervision.rs has the graceful path).
    let mut command = corral_command(&[
        "--shutdown-grace",
        "0",
        "run",
        &g("sleepy"),
        "-n",
        "3",
        "--mount",
        "@shared:/",
        "--vfs-save",
    ]);
    command.arg(out);
    if sigint_ignored {
        // SAFETY: signal() is async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let mut child = Bounded::spawn(&mut command, b"", PATIENCE);
    for _ in 0..awake {
        child.wait_for_line(|line| line.contains("sleeping"));
    }
    child
}

#[test]
fn ctrl_c_terminates_the_workers_and_still_saves_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // As soon as one worker runs: corral must listen from before the first
    // worker starts, or this SIGINT is lost and the run sleeps an hour.
    let mut child = sleepers(&out, 1, true);
    child.signal(libc::SIGINT);
    let output = child.finish();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("corral: interrupted; terminating 3 workers"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("killed: terminated").count(), 3, "{stderr}");
    assert!(out.is_dir(), "the tree was saved: {stderr}");
}

#[test]
fn sigterm_terminates_the_workers_and_still_saves_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = sleepers(&out, 3, false);
    child.signal(libc::SIGTERM);
    let output = child.finish();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("corral: terminated (SIGTERM); terminating 3 workers"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("killed: terminated").count(), 3, "{stderr}");
    assert!(out.is_dir(), "the tree was saved: {stderr}");
}

#[test]
fn a_stack_the_engine_cannot_give_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (stack, limit) in [
        ("16EiB", "larger than any host"),
        ("2GiB", "(1.0 GiB)"),
        ("0", "(4.0 KiB)"),
    ] {
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, format!("[profiles.p]\nstack = \"{stack}\"\n")).unwrap();
        let out = corral(&["run", &g("hello"), "--policy", policy.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stack}: {stderr}");
        // Refused where it is written: the file, line 2, the key.
        let at_line = stderr.contains("policy.toml:2:") || stderr.contains("at line 2");
        assert!(at_line, "{stack}: {stderr}");
        assert!(stderr.contains("stack"), "{stack}: {stderr}");
        assert!(stderr.contains(limit), "{stack}: {stderr}");
        assert!(!stderr.contains("internal error"), "{stack}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{stack}: nothing ran");

        let manifest = dir.path().join("corral.toml");
        std::fs::write(
            &manifest,
            format!(
                "[[worker]]\nname = \"deep\"\ncomponent = {:?}\npolicy = \"policy.toml\"\n",
                g("hello")
            ),
        )
        .unwrap();
        let out = corral(&["up", manifest.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stack}: {stderr}");
        assert!(stderr.contains("worker `deep`"), "{stack}: {stderr}");
        assert!(stderr.contains("policy.toml"), "{stack}: {stderr}");
        assert!(stderr.contains(limit), "{stack}: {stderr}");
    }
}

/// A pipeline whose producer cannot start would leave the transformer
/// waiting for input forever, the pool stage for the transformer, the
/// consumer for the pool: the run ends at once instead and says why, with
/// exit 3 for a component that has no `main` (a pool task), 137 for one
/// whose memory cap refuses its instantiation.
#[test]
fn a_pipeline_whose_producer_cannot_start_ends_promptly() {
    for (producer, limit, code) in [
        (g("square"), "", 3),
        (g("producer"), "memory = \"64KiB\"", 137),
    ] {
        pipeline_ends_promptly(&producer, limit, code);
    }
}

fn pipeline_ends_promptly(producer: &str, producer_limit: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[queues.raw]
capacity = 4
[queues.numbers]
capacity = 4
[queues.squares]
capacity = 4

[[worker]]
name = "producer"
component = "{producer}"
args = ["raw", "1000", "1"]
{producer_limit}

[[worker]]
name = "transformer"
component = "{transformer}"
args = ["raw", "numbers", "1"]

[[pool]]
name = "square"
component = "{square}"
workers = 2
input = "numbers"
output = "squares"
producers = ["transformer"]

[[worker]]
name = "consumer"
component = "{consumer}"
args = ["squares"]
"#,
        square = g("square"),
        transformer = g("transformer"),
        consumer = g("consumer"),
    );
    let path = dir.path().join("corral.toml");
    std::fs::write(&path, manifest).unwrap();
    let started = std::time::Instant::now();
    let out = output_within(
        &mut corral_command(&["up", path.to_str().unwrap()]),
        b"",
        Duration::from_secs(30),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains("corral: producer could not start; terminating"),
        "{stderr}"
    );
    assert!(
        stderr.contains("transformer  killed: terminated"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
