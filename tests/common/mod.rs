//! Shared helpers for the end-to-end tests: where the guests are, a
//! runtime configured for tests, and child processes with deadlines.
#![allow(dead_code)] // each test binary uses a different subset

pub mod child;
pub mod redis;

use std::path::PathBuf;
use std::sync::Arc;

use corral::{ConsoleStyle, EngineOptions, Event, EventLog, Program, Runtime, RuntimeConfig};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The path of a guest built by `make guests`, by crate name.
pub fn guest(name: &str) -> PathBuf {
    let target = if name.ends_with("-p1") {
        "wasm32-wasip1"
    } else {
        "wasm32-wasip2"
    };
    let path = root().join(format!("guests/rust/target/{target}/release/{name}.wasm"));
    assert!(
        path.exists(),
        "guest {name} is not built ({}): run `make guests` first",
        path.display()
    );
    path
}

/// A compile cache shared by all test runs, so debug test builds compile
/// each guest once, not once per test.
pub fn shared_cache_dir() -> PathBuf {
    root().join("target/test-compile-cache")
}

/// A runtime for tests: small pool, shared cache, events recorded.
pub fn runtime_with(max_workers: u32) -> (Runtime, Arc<EventLog>) {
    let events = EventLog::new();
    let runtime = Runtime::new(RuntimeConfig {
        engine: EngineOptions {
            max_workers,
            ..EngineOptions::default()
        },
        cache_dir: Some(shared_cache_dir()),
        console: ConsoleStyle { color: false },
        events: Some(events.clone()),
    })
    .expect("runtime");
    (runtime, events)
}

/// A runtime with room for 64 workers.
pub fn runtime() -> Runtime {
    runtime_with(64).0
}

/// Loads a guest by crate name.
pub fn load(runtime: &Runtime, name: &str) -> Program {
    runtime
        .load(guest(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Spawns guest `program` as worker `name` of `run`, output captured,
/// under `policy`.
pub fn spawn_under(
    rt: &Runtime,
    run: &corral::Run,
    program: &str,
    name: &str,
    args: &[&str],
    policy: &corral::policy::Profile,
) -> corral::Worker {
    let mut spec = corral::WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(corral::Stdio::Capture)
        .run(run);
    policy.apply_to(&mut spec);
    rt.spawn(&load(rt, program), spec)
}

/// Captured stdout of a worker, as text.
pub fn stdout_of(worker: &corral::Worker) -> String {
    String::from_utf8_lossy(&worker.stdout()).into_owned()
}

/// The denials `worker` met, as (rule, action), in the order they came.
pub fn denials(events: &[Event], worker: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Denied {
                name, rule, action, ..
            } if name == worker => Some((rule.clone(), action.clone())),
            _ => None,
        })
        .collect()
}

/// The profile of a one-profile policy file, as a test writes it inline.
pub fn profile(toml: &str) -> corral::Profile {
    corral::PolicyFile::parse(std::path::Path::new("test-policy.toml"), toml)
        .unwrap()
        .profile(None)
        .unwrap()
}

/// Bytes a command printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The path of a built guest (see [`guest`]), as a command-line argument.
pub fn g(name: &str) -> String {
    guest(name).display().to_string()
}
