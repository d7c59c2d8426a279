//! Queues across hosts (issue 10): two `corral up` processes on one Redis
//! server on loopback, host A putting and host B taking (so every message
//! crosses between hosts), unbatched and in batches; beside the same
//! workload in one host on the local backend, and beside CPython's
//! `multiprocessing.managers` queue served over TCP
//! (`bench/python/managers_queue.py`).
//!
//! The bench starts its own `redis-server` (Debian's package) on a free
//! loopback port and stops it; without one these rows are skipped, saying so.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corral::ipc::redis::{RedisBackend, RedisConfig};
use corral::ipc::{Backend, QueueConfig};
use corral::{Run, Stdio as WorkerStdio, WorkerSpec};

use crate::common::{Bench, Row, Target, Unit, guest, root, runtime, secs};

const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const SIZE: usize = 64;
const CAPACITY: usize = 10_000;

/// A `redis-server` of the bench's own, stopped when dropped.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!("  scale: no redis-server ({e}): rows skipped");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis(child, port))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.1)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `corral up` of `manifest` on the bench's Redis, in namespace `ns`.
fn host(dir: &Path, name: &str, manifest: &str, url: &str, ns: &str) -> Child {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, manifest).unwrap();
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--cache-dir")
        .arg(root().join("target/bench-compile-cache"))
        .args(["--quiet", "up"])
        .arg(&path)
        .args(["--backend", url, "--namespace", ns])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start corral")
}

/// Waits for a host in a blocking thread; returns its stdout, panicking
/// unless it exited 0.
async fn finish(child: Child) -> String {
    tokio::task::spawn_blocking(move || {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a host failed: {:?}",
            output.status
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// `got COUNT SUM` lines of the `get` workers, added up.
fn totals(out: &str) -> (u64, u64) {
    out.lines()
        .filter_map(|l| l.split_once("got ").map(|(_, rest)| rest))
        .fold((0, 0), |(c, s), rest| {
            let mut it = rest.split_whitespace().map(|v| v.parse::<u64>().unwrap());
            let (count, sum) = (it.next().unwrap(), it.next().unwrap());
            (c + count, s.wrapping_add(sum))
        })
}

fn check(count: u64, sum: u64, n: u64) {
    assert_eq!(count, n, "messages lost or duplicated");
    assert_eq!(sum, n * (n - 1) / 2, "checksum");
}

/// Messages per second from host A's producers to host B's consumers, `n`
/// in all, `batch` per put-many / get-many; from the start of both hosts
/// until B's consumers have drained the queue (closed once A ended).
async fn across_hosts(redis: &Redis, n: usize, batch: usize) -> f64 {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let ns = format!(
        "bench-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let backend = RedisBackend::connect(RedisConfig::new(redis.url()).namespace(&ns))
        .await
        .expect("connect");
    let run = Run::with_backend(Backend::Redis(backend));
    let config = QueueConfig {
        capacity: CAPACITY,
        ..QueueConfig::default()
    };
    let q = run.objects().declare_queue("q", config).unwrap();
    let ipc = guest("bench-ipc").display().to_string();
    let queue = format!("[queues.q]\ncapacity = {CAPACITY}\n");
    let share = n / PRODUCERS;
    let mut putters = queue.clone();
    for i in 0..PRODUCERS {
        putters += &format!(
            "[[worker]]\nname = \"put{i}\"\ncomponent = \"{ipc}\"\n\
             args = [\"put\", \"q\", \"{}\", \"{share}\", \"{SIZE}\", \"{batch}\"]\n",
            i * share
        );
    }
    let getters = format!(
        "{queue}[[worker]]\nname = \"get\"\ncomponent = \"{ipc}\"\ncount = {CONSUMERS}\n\
         args = [\"get\", \"q\", \"{SIZE}\", \"{batch}\"]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let b = host(dir.path(), "b", &getters, &redis.url(), &ns);
    let a = host(dir.path(), "a", &putters, &redis.url(), &ns);
    finish(a).await;
    q.try_close().await.unwrap();
    let out = finish(b).await;
    let elapsed = secs(start);
    let (count, sum) = totals(&out);
    check(count, sum, (share * PRODUCERS) as u64);
    (share * PRODUCERS) as f64 / elapsed
}

/// The same workload in one host on the local backend.
async fn local(n: usize, batch: usize) -> f64 {
    let rt = runtime(16);
    let ipc = rt.load(guest("bench-ipc")).unwrap();
    let run = Run::new();
    let config = QueueConfig {
        capacity: CAPACITY,
        ..QueueConfig::default()
    };
    let q = run.objects().declare_queue("q", config).unwrap();
    let share = n / PRODUCERS;
    let spawn = |name: String, args: Vec<String>| {
        rt.spawn(
            &ipc,
            WorkerSpec::new(name)
                .args(args)
                .stdio(WorkerStdio::Capture)
                .run(&run),
        )
    };
    let start = Instant::now();
    let getters: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let args = ["get", "q", &SIZE.to_string(), &batch.to_string()];
            spawn(format!("get{i}"), args.map(String::from).to_vec())
        })
        .collect();
    let putters: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let args = [
                "put".to_string(),
                "q".into(),
                (i * share).to_string(),
                share.to_string(),
                SIZE.to_string(),
                batch.to_string(),
            ];
            spawn(format!("put{i}"), args.to_vec())
        })
        .collect();
    for w in &putters {
        assert!(w.join().await.success());
    }
    q.close().await;
    let mut out = String::new();
    for w in &getters {
        assert!(w.join().await.success());
        out += &String::from_utf8_lossy(&w.stdout());
    }
    let elapsed = secs(start);
    let (count, sum) = totals(&out);
    check(count, sum, (share * PRODUCERS) as u64);
    (share * PRODUCERS) as f64 / elapsed
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let Some(redis) = Redis::start() else {
        return Vec::new();
    };
    let redis = &redis;
    let mut rows = Vec::new();
    // (workload, Corral n, CPython n, batch, target, note)
    let cases = [
        (
            "Queue across 2 hosts (Redis), 2→2, 64 B",
            100_000,
            "20000",
            1,
            Target::default(),
        ),
        (
            "Queue across 2 hosts (Redis), 2→2, 64 B, batches of 100",
            1_000_000,
            "200000",
            100,
            Target {
                ratio: None,
                absolute: Some(1e5),
            },
        ),
    ];
    for (workload, n, py_n, batch, target) in cases {
        let batch_arg = batch.to_string();
        let py_args = ["q", "--n", py_n, "--batch", &batch_arg];
        let row = bench
            .row(
                workload,
                Unit::MsgsPerSec,
                target,
                Some((&[], "managers_queue.py", &py_args)),
                || across_hosts(redis, n, batch),
            )
            .await;
        rows.extend(row.map(|r| {
            r.note(format!(
                "A puts, B gets: every message crosses hosts through redis-server on \
                 loopback. CPython: a queue.Queue served by multiprocessing.managers \
                 over TCP, {py_n} messages"
            ))
        }));
        let local_name = format!("{workload} — same, one host, local backend");
        let row = bench
            .row(
                &local_name,
                Unit::MsgsPerSec,
                Target::default(),
                None,
                || local(n, batch),
            )
            .await;
        rows.extend(row);
    }
    rows
}
