//! Guests in every language, through the real host: the same three guests
//! (a queue consumer, a locked appender, a pool task) in Rust, C, C++, Zig,
//! Python and JavaScript, checked by one set of helpers; preview1 core
//! modules adapted in-process; the clear errors for a component that lacks
//! an export or imports what the host lacks; `[[pool]]` stages in `corral
//! up`, one of them a four-language pipeline; and `corral new` scaffolds
//! that build and run.
//!
//! The guests are built by `make guests`. Python and JavaScript components
//! are large (15-18 MB) and take about a minute each to compile in a debug
//! host, so every load goes through the shared compile cache, one at a time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{root, runtime, shared_cache_dir, stdout_of, text};
use corral::feed::{FeedEnd, FeedOptions, feed_pool};
use corral::ipc::QueueConfig;
use corral::{
    ExitStatus, InputKind, LoadError, Pool, PoolOptions, Program, Run, Runtime, Stdio, TaskError,
    Worker, WorkerSpec,
};

/// Where `make guests` puts guest `name` of `lang`.
fn guest(lang: &str, name: &str) -> PathBuf {
    if lang == "rust" {
        return common::guest(name);
    }
    let path = root().join(format!("guests/{lang}/build/{name}.wasm"));
    assert!(
        path.exists(),
        "{lang} guest {name} is not built ({}): run `make guests` first",
        path.display()
    );
    path
}

/// Loads a file, one load at a time: concurrent tests would otherwise
/// compile the same large component at once instead of sharing the cache.
fn try_load(rt: &Runtime, path: &Path) -> Result<Program, LoadError> {
    static LOADING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    rt.load(path)
}

fn load_file(rt: &Runtime, path: &Path) -> Program {
    try_load(rt, path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

fn load(rt: &Runtime, lang: &str, name: &str) -> Program {
    load_file(rt, &guest(lang, name))
}

fn spawn(rt: &Runtime, run: &Run, program: &Program, name: &str, args: &[&str]) -> Worker {
    let mut spec = WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .run(run);
    spec.mounts = vec![corral::vfs::MountSpec::shared_root()];
    rt.spawn(program, spec)
}

async fn expect_ok(worker: &Worker) -> String {
    let status = worker.join().await;
    let out = stdout_of(worker);
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}: {out}{}",
        worker.name(),
        String::from_utf8_lossy(&worker.stderr())
    );
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A Rust producer puts 2,000 messages and a stop on `jobs`; the
/// language's consumer must take exactly those, in order, and report the
/// producer's checksum, on stdout and on the `results` queue.
async fn consumer(lang: &str) {
    let rt = runtime();
    let run = Run::new();
    let small = QueueConfig {
        capacity: 64,
        ..QueueConfig::default()
    };
    run.objects().declare_queue("jobs", small.clone()).unwrap();
    run.objects().declare_queue("results", small).unwrap();
    let producer = common::load(&rt, "producer");
    let consumer = load(&rt, lang, "consumer");
    let c = spawn(&rt, &run, &consumer, "consumer", &["jobs"]);
    let p = spawn(&rt, &run, &producer, "producer", &["jobs", "2000", "1"]);
    let produced = expect_ok(&p).await;
    let consumed = expect_ok(&c).await;
    let checksum = produced
        .trim()
        .strip_prefix("produced 2000 messages (checksum ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("producer said {produced:?}"));
    assert_eq!(
        consumed.trim(),
        format!("consumed 2000 messages (checksum {checksum}), 0 out of order"),
        "{lang}"
    );
    // The producer reports there too.
    let results = run.objects().queue("results").unwrap().handle();
    let sum = u64::from_str_radix(checksum, 16).unwrap();
    let mut reports = Vec::new();
    while let Some(report) = results.try_get().await.unwrap() {
        reports.push(String::from_utf8(report.to_vec()).unwrap());
    }
    assert!(
        reports.contains(&format!("consumed 2000 {sum}")),
        "{lang}: {reports:?}"
    );
}

/// Three of the language's appenders write 100 lines each under the lock;
/// the Rust line checker must find exactly 300 intact lines.
async fn appender(lang: &str) {
    let rt = runtime();
    let run = Run::new();
    run.objects().declare_lock("file", false).unwrap();
    let appender = load(&rt, lang, "appender");
    let workers: Vec<Worker> = (1..=3)
        .map(|i| {
            let name = format!("{lang}-{i}");
            spawn(&rt, &run, &appender, &name, &["/log.txt", "file", "100"])
        })
        .collect();
    for w in &workers {
        assert_eq!(
            expect_ok(w).await.trim(),
            "appended 100 lines to /log.txt",
            "{lang}"
        );
    }
    let check = spawn(
        &rt,
        &run,
        &common::load(&rt, "linecheck"),
        "check",
        &["/log.txt", "300"],
    );
    let verdict = expect_ok(&check).await;
    assert!(
        verdict.starts_with("OK: 300 lines in /log.txt, 300 intact"),
        "{lang}: {verdict}"
    );
}

/// The language's square task in a pool: squares in input order, and a
/// failed task (not a number, an overflow) fails alone with the task's
/// own message.
async fn square(lang: &str) {
    let rt = runtime();
    let task = load(&rt, lang, "square");
    assert!(task.is_task(), "{lang}");
    let options = PoolOptions {
        workers: 2,
        worker: WorkerSpec::new("square").stdio(Stdio::Capture),
        ..PoolOptions::default()
    };
    let pool = Pool::new(&rt, &task, options).unwrap();
    let inputs = "-3 -2 -1 0 1 2 3 3037000499 x 9999999999";
    let results = pool
        .map(inputs.split(' ').map(|s| s.as_bytes().to_vec()).collect())
        .await;
    let ok: Vec<String> = results[..8]
        .iter()
        .map(|r| String::from_utf8(r.clone().expect("ok")).unwrap())
        .collect();
    assert_eq!(
        ok,
        ["9", "4", "1", "0", "1", "4", "9", "9223372030926249001"],
        "{lang}"
    );
    for (result, why) in results[8..].iter().zip(["not an integer", "overflows i64"]) {
        match result {
            Err(TaskError::Failed(message)) => assert!(message.contains(why), "{lang}: {message}"),
            other => panic!("{lang}: expected a failed task, got {other:?}"),
        }
    }
    assert_eq!(pool.stats().failed, 2, "{lang}");
}

macro_rules! three_guests {
    ($($lang:ident),*) => {
        $(
            mod $lang {
                #[tokio::test(flavor = "multi_thread")]
                async fn consumer() {
                    super::consumer(stringify!($lang)).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn appender() {
                    super::appender(stringify!($lang)).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn square() {
                    super::square(stringify!($lang)).await;
                }
            }
        )*
    };
}

three_guests!(rust, c, cpp, zig, python, js);

#[test]
fn c_cpp_and_zig_guests_are_preview1_modules_adapted_in_process() {
    let rt = runtime();
    for lang in ["c", "cpp", "zig"] {
        for name in ["consumer", "appender", "square"] {
            let path = guest(lang, name);
            let bytes = std::fs::read(&path).unwrap();
            // A core module's header: magic and version 1 (a component's
            // version field says otherwise).
            assert_eq!(&bytes[..8], b"\0asm\x01\0\0\0", "{}", path.display());
            let program = load_file(&rt, &path);
            assert_eq!(program.kind(), InputKind::CoreModule, "{lang} {name}");
            assert_eq!(program.is_task(), name == "square", "{lang} {name}");
            assert_eq!(program.is_command(), name != "square", "{lang} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_task_run_as_a_worker_says_it_has_no_main() {
    let rt = runtime();
    for lang in ["python", "js", "c"] {
        let task = load(&rt, lang, "square");
        let worker = spawn(&rt, &Run::new(), &task, "square", &[]);
        match worker.join().await {
            ExitStatus::FailedToStart { reason } => {
                assert!(reason.contains("has no `main`"), "{lang}: {reason}");
                assert!(reason.contains("corral pool"), "{lang}: {reason}");
            }
            other => panic!("{lang}: expected failed-to-start, got {other}"),
        }
    }
}

#[test]
fn componentize_js_defaults_import_http_which_the_host_lacks() {
    let rt = runtime();
    match try_load(&rt, &guest("js", "square-with-http")) {
        Err(err @ LoadError::MissingImports { .. }) => {
            let message = err.to_string();
            assert!(message.contains("wasi:http/"), "{message}");
            assert!(message.contains("does not provide"), "{message}");
        }
        other => panic!("expected missing imports, got {other:?}"),
    }
}

/// Numbers in, squares out, through a queue-fed pool; the input ends in
/// each of its three ways.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_fed_pool_ends_by_stop_close_or_producers() {
    let rt = runtime();
    let task = common::load(&rt, "square");
    for end in [FeedEnd::Stop, FeedEnd::Closed, FeedEnd::ProducersEnded] {
        let run = Run::new();
        let input = run
            .objects()
            .declare_queue("in", QueueConfig::default())
            .unwrap();
        let output = run
            .objects()
            .declare_queue("out", QueueConfig::default())
            .unwrap();
        let feeder = input.handle();
        for i in 1..=50 {
            feeder.put(i.to_string().into_bytes(), None).await.unwrap();
        }
        feeder.put(b"x".to_vec(), None).await.unwrap();
        match end {
            FeedEnd::Stop => feeder.put(Vec::new(), None).await.unwrap(),
            FeedEnd::Closed => input.close().await,
            _ => {}
        }
        let producers_done: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match end {
            FeedEnd::ProducersEnded => Box::pin(std::future::ready(())),
            _ => Box::pin(std::future::pending()),
        };
        let options = PoolOptions {
            workers: 3,
            worker: WorkerSpec::new("sq").stdio(Stdio::Capture).run(&run),
            ..PoolOptions::default()
        };
        let pool = Pool::new(&rt, &task, options).unwrap();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let report = feed_pool(
            &pool,
            &input,
            &output,
            producers_done,
            std::future::pending(),
            FeedOptions { chunk: 4, stops: 2 },
            move |index, e| seen.lock().unwrap().push((index, e.to_string())),
        )
        .await;
        assert_eq!(report.end, end);
        assert_eq!((report.succeeded, report.failed), (50, 1), "{end:?}");
        let failures = failures.lock().unwrap().clone();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, 50);
        let taker = output.handle();
        let mut got = Vec::new();
        while let Some(m) = taker.try_get().await.unwrap() {
            got.push(String::from_utf8(m.to_vec()).unwrap());
        }
        let mut expected: Vec<String> = (1..=50u64).map(|i| (i * i).to_string()).collect();
        expected.extend([String::new(), String::new()]);
        assert_eq!(got, expected, "{end:?}: results in order, then two stops");
        // Every input, the stop included, was marked done.
        input.join(Some(Duration::from_secs(1))).await.unwrap();
    }
}

fn corral(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args)
        .output()
        .expect("running corral")
}

#[test]
fn four_languages_one_pipeline() {
    // Python produces, Rust transforms, a JavaScript pool squares, C consumes.
    let manifest = root().join("examples/languages.toml");
    let out = corral(&["up", manifest.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let sum = (0..1000u64).fold(0u64, |sum, i| {
        sum.wrapping_add(fnv1a((i * i).to_string().as_bytes()))
    });
    for line in [
        "[py-producer] produced 1000 messages".to_string(),
        "[rust-transformer] transformed 1000 messages".to_string(),
        format!("[c-consumer] consumed 1000 messages (checksum {sum:016x}), 0 out of order"),
    ] {
        assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        stderr.contains(
            "js-square  pool: 1000 tasks, 1000 ok, 0 failed (end of input: stop message)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_pool_stage_ends_with_its_producers_and_failed_tasks_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let rust = root().join("guests/rust/target/wasm32-wasip2/release");
    // The producer sends no stop: the pool ends when it has ended. Its
    // messages are not numbers, so every square fails.
    let manifest = format!(
        r#"
[queues.jobs]
[queues.squares]

[[worker]]
name = "producer"
component = "{rust}/producer.wasm"
args = ["jobs", "20"]

[[worker]]
name = "consumer"
component = "{rust}/consumer.wasm"
args = ["squares"]

[[pool]]
name = "sq"
component = "{rust}/square.wasm"
workers = 2
input = "jobs"
output = "squares"
producers = ["producer"]
"#,
        rust = rust.display()
    );
    let path = dir.path().join("corral.toml");
    std::fs::write(&path, manifest).unwrap();
    let out = corral(&["up", path.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("[consumer] consumed 0 messages"),
        "{stdout}"
    );
    assert!(
        stderr.contains("sq  pool: 20 tasks, 0 ok, 20 failed (end of input: producers ended)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("corral: pool sq: input 0: task failed: not an integer"),
        "{stderr}"
    );
}

#[test]
fn a_pool_stage_needs_a_task_component() {
    let dir = tempfile::tempdir().unwrap();
    let consumer = common::guest("consumer");
    let manifest = format!(
        "[queues.a]\n[queues.b]\n[[worker]]\nname = \"w\"\ncomponent = \"{c}\"\n\
         [[pool]]\nname = \"p\"\ncomponent = \"{c}\"\ninput = \"a\"\noutput = \"b\"\n",
        c = consumer.display()
    );
    let path = dir.path().join("corral.toml");
    std::fs::write(&path, manifest).unwrap();
    let out = corral(&["up", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pool `p`"), "{stderr}");
    assert!(
        stderr.contains("is not a pool task: it does not export corral:worker/task"),
        "{stderr}"
    );
}

/// `corral new` in `lang`, built with the scaffold's one command (using the
/// toolchains `make guests` installed), then run: it must greet by name.
fn scaffold_builds_and_runs(lang: &str, build: &[&str], env: &[(&str, PathBuf)], output: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    let name = format!("hi-{lang}");
    let out = corral(&[
        "new",
        "--lang",
        lang,
        &name,
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let built = Command::new(build[0])
        .args(&build[1..])
        .current_dir(&project)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .expect("running the build");
    assert!(
        built.status.success(),
        "{lang}: {}{}",
        text(&built.stdout),
        text(&built.stderr)
    );
    let wasm = project.join(output.replace("NAME", &name));
    let ran = corral(&["run", wasm.to_str().unwrap()]);
    assert_eq!(
        text(&ran.stdout),
        format!("hello from {name}\n"),
        "{lang}: {}",
        text(&ran.stderr)
    );
}

#[test]
fn scaffold_rust() {
    scaffold_builds_and_runs(
        "rust",
        &["cargo", "build", "--release", "--quiet"],
        &[],
        "target/wasm32-wasip2/release/NAME.wasm",
    );
}

#[test]
fn scaffold_c() {
    scaffold_builds_and_runs("c", &["make", "--quiet"], &[], "build/NAME.wasm");
}

#[test]
fn scaffold_cpp() {
    scaffold_builds_and_runs("cpp", &["make", "--quiet"], &[], "build/NAME.wasm");
}

#[test]
fn scaffold_zig() {
    let python = root().join("guests/zig/.venv/bin/python");
    let zig = format!("ZIG={} -m ziglang", python.display());
    scaffold_builds_and_runs("zig", &["make", "--quiet", &zig], &[], "build/NAME.wasm");
}

#[test]
fn scaffold_python() {
    let venv = root().join("guests/python/.venv/bin");
    let path = std::env::join_paths(
        std::iter::once(venv).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    scaffold_builds_and_runs(
        "python",
        &["make", "--quiet"],
        &[("PATH", PathBuf::from(path))],
        "NAME.wasm",
    );
}

#[test]
fn scaffold_js() {
    // The guests' own componentize-js, rather than `npm install` per test.
    let cjs = root().join("guests/js/node_modules/.bin/componentize-js");
    let arg = format!("CJS={}", cjs.display());
    scaffold_builds_and_runs("js", &["make", "--quiet", &arg], &[], "NAME.wasm");
}
