//! Loading: components, preview1 core modules, WebAssembly text, the compile
//! cache, and a clear error for every kind of bad input.

mod common;

use std::path::Path;

use common::{guest, runtime, runtime_with, stdout_of};
use corral::{
    CacheOutcome, ConsoleStyle, EngineOptions, Event, EventLog, ExitStatus, InputKind, LoadError,
    Runtime, RuntimeConfig, Stdio, WorkerSpec,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_err(path: &Path) -> LoadError {
    runtime().load(path).expect_err("load must fail")
}

#[tokio::test(flavor = "multi_thread")]
async fn preview1_core_module_runs_through_the_adapter() {
    let rt = runtime();
    let program = rt.load(guest("hello-p1")).unwrap();
    assert_eq!(program.kind(), InputKind::CoreModule);
    let worker = rt.spawn(
        &program,
        WorkerSpec::new("p1").args(["q"]).stdio(Stdio::Capture),
    );
    assert_eq!(worker.join().await, ExitStatus::Exited { code: 0 });
    assert!(stdout_of(&worker).contains(r#"args: ["q"]"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn wat_core_module_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A preview1 command written by hand: writes "hi from wat\n" to stdout.
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "hi from wat\n")
        (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 12))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
    let path = write(dir.path(), "hi.wat", wat.as_bytes());
    let rt = runtime();
    let program = rt.load(&path).unwrap();
    assert_eq!(program.kind(), InputKind::CoreModule);
    let worker = rt.spawn(&program, WorkerSpec::new("wat").stdio(Stdio::Capture));
    assert_eq!(worker.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&worker), "hi from wat\n");
}

#[test]
fn second_load_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let new_runtime = |events: std::sync::Arc<EventLog>| {
        Runtime::new(RuntimeConfig {
            engine: EngineOptions {
                max_workers: 4,
                ..EngineOptions::default()
            },
            cache_dir: Some(dir.path().to_owned()),
            console: ConsoleStyle { color: false },
            events: Some(events),
        })
        .unwrap()
    };
    let first_events = EventLog::new();
    let first = new_runtime(first_events.clone())
        .load(guest("hello"))
        .unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    // A fresh runtime (as a second `corral run` would be) finds the entry.
    let second_events = EventLog::new();
    let second = new_runtime(second_events.clone())
        .load(guest("hello"))
        .unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    let cache_of = |log: &EventLog| match &log.events()[..] {
        [Event::Loaded { cache, .. }] => *cache,
        other => panic!("unexpected events {other:?}"),
    };
    assert_eq!(cache_of(&first_events), CacheOutcome::Miss);
    assert_eq!(cache_of(&second_events), CacheOutcome::Hit);
    // Core modules are cached too, adapter output included.
    let rt = new_runtime(EventLog::new());
    assert_eq!(
        rt.load(guest("hello-p1")).unwrap().cache_outcome(),
        CacheOutcome::Miss
    );
    assert_eq!(
        rt.load(guest("hello-p1")).unwrap().cache_outcome(),
        CacheOutcome::Hit
    );
}

#[test]
fn corrupt_cache_entry_is_recompiled_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        engine: EngineOptions {
            max_workers: 4,
            ..EngineOptions::default()
        },
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config.clone()).unwrap();
    rt.load(guest("hello")).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let again = Runtime::new(config).unwrap().load(guest("hello")).unwrap();
    assert_eq!(again.cache_outcome(), CacheOutcome::Miss);
}

#[test]
fn no_cache_compiles_every_time() {
    let config = RuntimeConfig {
        engine: EngineOptions {
            max_workers: 4,
            ..EngineOptions::default()
        },
        cache_dir: None,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config).unwrap();
    assert_eq!(
        rt.load(guest("hello")).unwrap().cache_outcome(),
        CacheOutcome::Disabled
    );
}

#[test]
fn text_file_is_named_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "notes.wasm",
        b"hello, I am a text file\nline two\n",
    );
    let err = load_err(&path).to_string();
    assert!(err.contains("is not a WebAssembly file"), "{err}");
    assert!(
        err.contains(r#"a text file starting with "hello, I am a text file""#),
        "{err}"
    );
}

#[test]
fn native_executable_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "prog.wasm",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
    );
    let err = load_err(&path).to_string();
    assert!(err.contains("an ELF executable or library"), "{err}");
    let path = write(dir.path(), "empty.wasm", b"");
    assert!(load_err(&path).to_string().contains("an empty file"));
    let path = write(dir.path(), "x.wasm.gz", b"\x1f\x8b\x08\0rest");
    assert!(load_err(&path).to_string().contains("gzip-compressed"));
}

#[test]
fn truncated_and_corrupt_wasm_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "short.wasm", b"\0asm\x01\0");
    let err = load_err(&path).to_string();
    assert!(
        err.contains("ends inside the 8-byte WebAssembly header"),
        "{err}"
    );
    let path = write(
        dir.path(),
        "bad.wasm",
        b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f",
    );
    let err = load_err(&path);
    assert!(matches!(err, LoadError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is not a valid WebAssembly module or component"),
        "{err}"
    );
}

#[test]
fn bad_wat_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.wat",
        b"(module\n  (func (result i32)\n    i32.const oops))\n",
    );
    let err = load_err(&path).to_string();
    assert!(
        err.contains("is WebAssembly text that does not parse"),
        "{err}"
    );
    assert!(err.contains(":3:"), "{err}");
}

#[test]
fn missing_imports_are_each_listed() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(component
        (import "acme:db/query@1.0.0" (instance))
        (import "wasi:http/outgoing-handler@0.2.0" (instance))
        (import "wasi:cli/stdout@0.2.0" (instance))
    )"#;
    let path = write(dir.path(), "needy.wat", wat.as_bytes());
    match load_err(&path) {
        LoadError::MissingImports { imports, .. } => assert_eq!(
            imports,
            ["acme:db/query@1.0.0", "wasi:http/outgoing-handler@0.2.0"]
        ),
        other => panic!("unexpected {other:?}"),
    }
    let err = load_err(&path).to_string();
    assert!(
        err.contains("  - acme:db/query@1.0.0\n  - wasi:http/outgoing-handler@0.2.0"),
        "{err}"
    );
}

#[test]
fn component_without_entry_point_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "inert.wat",
        b"(component (core module $m) (core instance (instantiate $m)))",
    );
    let err = load_err(&path);
    assert!(matches!(err, LoadError::NoEntryPoint { .. }), "{err:?}");
    assert!(
        err.to_string().contains("exports neither `wasi:cli/run`"),
        "{err}"
    );
}

#[test]
fn preview1_module_importing_unknown_functions_cannot_be_adapted() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(module
        (import "env" "mystery" (func))
        (memory (export "memory") 1)
        (func (export "_start")))"#;
    let path = write(dir.path(), "env.wat", wat.as_bytes());
    let err = load_err(&path);
    assert!(matches!(err, LoadError::Adapt { .. }), "{err:?}");
    assert!(err.to_string().contains("env"), "{err}");
}

#[test]
fn missing_file_says_so() {
    let err = load_err(Path::new("/nonexistent/worker.wasm"));
    assert!(matches!(err, LoadError::Io { .. }));
    assert_eq!(err.to_string(), "cannot read /nonexistent/worker.wasm");
}

#[test]
fn inspect_reports_kind_imports_and_fit() {
    let (rt, _) = runtime_with(4);
    let found = rt.inspect(guest("hello")).unwrap();
    assert_eq!(found.kind, InputKind::Component);
    assert!(found.fits_worker());
    assert!(
        found
            .imports
            .iter()
            .any(|i| i.name.starts_with("corral:worker/process@0.1.0"))
    );
    assert!(
        found
            .exports
            .iter()
            .any(|e| e.name.starts_with("wasi:cli/run@0.2."))
    );
    let p1 = rt.inspect(guest("hello-p1")).unwrap();
    assert_eq!(p1.kind, InputKind::CoreModule);
    assert!(p1.fits_worker());
}
