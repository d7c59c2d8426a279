//! The `corral` binary as a user runs it: output, exit codes and messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{guest, shared_cache_dir};

fn corral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .arg("--max-workers")
        .arg("64")
        .args(args)
        // Users never see the host's Rust backtrace, even with this set.
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running corral")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

#[test]
fn run_prefixes_output_and_passes_args() {
    let out = corral(&["run", &g("hello"), "--", "a", "b"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[hello] hello from hello (worker 1), args: [\"a\", \"b\"]\n"
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
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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

#[test]
fn ctrl_c_terminates_the_workers_and_still_saves_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args([
            "run",
            &g("sleepy"),
            "-n",
            "3",
            "--mount",
            "@shared:/",
            "--vfs-save",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the workers are asleep (each printed its line).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.contains("sleeping"), "{line}");
    }
    // SAFETY: sending SIGINT to a child process we spawned and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted; terminating 3 workers"),
        "{stderr}"
    );
    assert!(stderr.contains("killed: terminated"), "{stderr}");
    assert!(out.is_dir(), "the tree was saved: {stderr}");
}
