//! `corral run` as a program in scripts and pipelines, in place of
//! `wasmtime run`: stdin, stdout and stderr byte for byte, exact exit codes,
//! `--dir` and `--env` as wasmtime spells them, and a closed stdout.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::child::output_within;
use common::{g, shared_cache_dir, text};

/// How long one `corral` command may run before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(120);

fn corral_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args);
    command
}

fn corral(args: &[&str]) -> Output {
    output_within(&mut corral_command(args), b"", PATIENCE)
}

/// `len` bytes of every value, from a fixed seed (xorshift).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Waits for `child` until `limit`, killing it and failing past it.
fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corral did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ten_megabytes_of_binary_data_pass_through_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = random_bytes(10 << 20);
    std::fs::write(&input, &data).unwrap();
    let mut child = corral_command(&["run", &g("cat")])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let status = wait_within(&mut child, PATIENCE);
    let errors = errors.join().unwrap();
    assert_eq!(status.code(), Some(0), "{errors}");
    assert_eq!(errors, "", "no prefix, no summary");
    let copied = std::fs::read(&output).unwrap();
    assert_eq!(copied.len(), data.len());
    assert!(copied == data, "the bytes differ");
}

#[test]
fn with_several_workers_or_when_asked_lines_are_prefixed() {
    let out = output_within(
        &mut corral_command(&["run", &g("cat"), "--prefix"]),
        b"a\x1bb\n",
        PATIENCE,
    );
    assert_eq!(text(&out.stdout), "[cat] a\\x1bb\n");
    let out = corral(&["run", &g("hello"), "-n", "2", "--no-prefix"]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("hello from hello-"), "{stdout}");
    assert!(!stdout.contains("[hello"), "{stdout}");
}

/// A worker writing without end into `head -n 1` ends at once, as a native
/// program does, and corral exits as SIGPIPE'd programs do: 141, silently.
#[test]
fn a_closed_stdout_ends_the_worker_like_sigpipe() {
    let script = format!(
        "yes 'a line' | '{}' --cache-dir '{}' run '{}' | head -n 1; \
         echo \"status ${{PIPESTATUS[1]}}\" >&2",
        env!("CARGO_BIN_EXE_corral"),
        shared_cache_dir().display(),
        g("cat"),
    );
    let started = Instant::now();
    let out = output_within(Command::new("bash").args(["-c", &script]), b"", PATIENCE);
    assert_eq!(text(&out.stdout), "a line\n");
    assert_eq!(text(&out.stderr), "status 141\n", "no error spam");
    assert!(started.elapsed() < Duration::from_secs(30));

    // Prefixed output: every worker writing to the closed stdout ends too,
    // though the input is far more than the pipes and backlogs hold.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lines.txt"), b"a line\n".repeat(4 << 20)).unwrap();
    let mount = format!("{}::/in", dir.path().display());
    let mut child = corral_command(&[
        "run",
        &g("cat"),
        "-n",
        "2",
        "--dir",
        &mount,
        "--",
        "/in/lines.txt",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = wait_within(&mut child, PATIENCE);
    assert_eq!(status.code(), Some(141));
}

#[test]
fn exit_codes_are_exact_for_components_and_preview1_modules() {
    for program in ["exit-code", "exit-p1"] {
        for code in [0, 1, 33, 255] {
            let out = corral(&["run", &g(program), &code.to_string()]);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{program} {code}: {}",
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), format!("exiting with {code}\n"));
        }
    }
}

#[test]
fn arguments_and_environment_of_any_content_arrive_intact() {
    let args = [
        "two words",
        "q\"uo'te",
        "new\nline",
        "é ü 日本",
        "",
        "--flag",
    ];
    let value = "spaces, \"quotes\", 'single'\nnewline and ünïcödé";
    let mut command = corral_command(&[
        "run",
        "--env",
        &format!("GREETING={value}"),
        &g("hello-p1"),
        "--",
    ]);
    command.args(args);
    let out = output_within(&mut command, b"", PATIENCE);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = format!("hello from a preview1 module, args: {args:?}\nGREETING={value}\n");
    assert_eq!(text(&out.stdout), expected);
    // `--env K` passes the host's value through, as wasmtime does.
    let mut command = corral_command(&["run", "--env", "GREETING", &g("hello-p1")]);
    command.env("GREETING", value);
    let out = output_within(&mut command, b"", PATIENCE);
    assert!(text(&out.stdout).ends_with(&format!("GREETING={value}\n")));
}

/// `--dir HOST::GUEST` and `--dir DIR` give a host directory read-write,
/// as `wasmtime run --dir` does; relative paths resolve through `--dir .`.
#[test]
fn dir_gives_a_host_directory_read_write_as_wasmtime_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from the host\n").unwrap();
    let host = dir.path().display().to_string();
    let out = corral(&[
        "run",
        "--dir",
        &format!("{host}::/data"),
        &g("cat"),
        "/data/in.txt",
        "-o",
        "/data/out.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "from the host\n"
    );
    let out = output_within(
        corral_command(&["run", "--dir", ".", &g("cat"), "in.txt"]).current_dir(dir.path()),
        b"",
        PATIENCE,
    );
    assert_eq!(
        text(&out.stdout),
        "from the host\n",
        "{}",
        text(&out.stderr)
    );
    let out = corral(&["run", "--dir", &host, &g("cat"), &format!("{host}/in.txt")]);
    assert_eq!(
        text(&out.stdout),
        "from the host\n",
        "{}",
        text(&out.stderr)
    );
    // Without --dir the worker sees no files at all.
    let out = corral(&["run", &g("cat"), &format!("{host}/in.txt")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cat: "), "{}", text(&out.stderr));
}

/// A script written for `wasmtime run` works with `corral run` in its
/// place, with no filter in between.
#[test]
fn a_script_written_for_wasmtime_run_works_with_corral_run() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check.sh");
    std::fs::write(
        &script,
        r#"#!/bin/bash
# Written for `wasmtime run`; $RUN is how this machine runs wasm programs.
set -u
cd "$WORK"
printf 'one\ntwo\n' > in.txt
$RUN --dir . "$CAT" in.txt > out1.txt || exit 10
cmp -s in.txt out1.txt || exit 11
$RUN --dir .::/data "$CAT" -o /data/out2.txt < in.txt || exit 12
cmp -s in.txt out2.txt || exit 13
$RUN --env GREETING="a b \"c\"" "$HELLO" x "y z" > out3.txt || exit 14
grep -qx 'GREETING=a b "c"' out3.txt || exit 15
grep -qF 'args: ["x", "y z"]' out3.txt || exit 16
$RUN --dir . "$CAT" missing.txt 2> err.txt
[ $? -eq 1 ] || exit 17
grep -q missing.txt err.txt || exit 18
$RUN "$EXIT" 33 > /dev/null 2>&1
[ $? -eq 33 ] || exit 19
head -c 100000 /dev/urandom > big.bin
$RUN "$CAT" < big.bin | cmp -s - big.bin || exit 20
echo ok
"#,
    )
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = format!(
        "{} --cache-dir {} run",
        env!("CARGO_BIN_EXE_corral"),
        shared_cache_dir().display()
    );
    let out = output_within(
        Command::new("bash")
            .arg(&script)
            .env("RUN", run)
            .env("WORK", &work)
            .env("CAT", g("cat"))
            .env("HELLO", g("hello-p1"))
            .env("EXIT", g("exit-p1")),
        b"",
        PATIENCE,
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "ok\n".to_string()),
        "{}",
        text(&out.stderr)
    );
    assert!(Path::new(&work.join("out2.txt")).exists());
}

/// A manifest says per worker whether its output is prefixed.
#[test]
fn a_manifest_worker_with_prefix_false_writes_its_output_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("corral.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[worker]]\nname = \"plain\"\ncomponent = {:?}\nprefix = false\n\n\
             [[worker]]\nname = \"tagged\"\ncomponent = {:?}\nafter = [\"plain\"]\n",
            g("hello"),
            g("hello"),
        ),
    )
    .unwrap();
    let out = corral(&["up", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello from plain (worker 1), args: []\n[tagged] hello from tagged (worker 2), args: []\n"
    );
}
