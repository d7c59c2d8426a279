//! TCP echo (scenario 6): round trips per second through the multiplexing
//! echo server worker (`echo-mux`) beside CPython's `select()` and asyncio
//! echo servers (`bench/python/echo_select.py`, `echo_asyncio.py`, run with
//! `--listen`). One client measures all three the same way: this file's, on
//! a thread of its own, K connections each with one 64-byte message in
//! flight, every echoed byte checked. Each run measures the three servers
//! one after the other, so each ratio is taken run by run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::ipc::QueueConfig;
use corral::{
    EngineOptions, Event, EventLog, ExitStatus, PolicyFile, Run, Runtime, RuntimeConfig,
    Stdio as WorkerStdio, Worker, WorkerSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Bench, Row, Target, Unit, guest, root};

/// Bytes per message, as in the other rows.
const SIZE: usize = 64;
/// How long one run may take before it counts as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// One of the CPython servers, serving until it is dropped.
struct PythonServer {
    child: Child,
    addr: SocketAddr,
}

impl PythonServer {
    /// Starts `python3 bench/python/SCRIPT --listen` and reads its port.
    fn start(script: &str) -> Option<PythonServer> {
        let mut child = Command::new("python3")
            .arg(root().join("bench/python").join(script))
            .arg("--listen")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| eprintln!("cannot run python3 for {script}: {e}"))
            .ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        let port: u16 = line.trim().parse().ok()?;
        Some(PythonServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        // Closing its stdin stops the server; kill in case it does not.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo server worker, under a policy that grants it 127.0.0.1 only.
struct CorralServer {
    worker: Worker,
    run: Run,
    addr: SocketAddr,
}

impl CorralServer {
    /// Starts echo-mux waiting in `mode`: `pollset` or `poll`.
    async fn start(mode: &str) -> CorralServer {
        let events = EventLog::new();
        let rt = Runtime::new(RuntimeConfig {
            engine: EngineOptions {
                max_workers: 16,
                ..EngineOptions::default()
            },
            cache_dir: Some(root().join("target/bench-compile-cache")),
            events: Some(events.clone()),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let program = rt.load(guest("echo-mux")).expect("echo-mux guest");
        let policy = PolicyFile::parse(
            Path::new("bench-policy.toml"),
            "[profiles.p.network]\nbind = [\"127.0.0.1:*\"]\n\
             [profiles.p.ipc]\nqueues = { control = [\"get\"] }\n",
        )
        .and_then(|f| f.profile(None))
        .expect("policy");
        let run = Run::new();
        run.objects()
            .declare_queue("control", QueueConfig::default())
            .unwrap();
        let mut spec = WorkerSpec::new("echo")
            .args(["127.0.0.1:0", "control", "600000", mode])
            .stdio(WorkerStdio::Capture)
            .run(&run);
        policy.apply_to(&mut spec);
        let worker = rt.spawn(&program, spec);
        let addr = listening(&events, &worker).await;
        CorralServer { worker, run, addr }
    }

    /// Tells the server to stop and checks that it did, cleanly.
    async fn stop(self) {
        let control = self.run.objects().queue("control").unwrap();
        control
            .handle()
            .put(b"stop".to_vec(), Some(RUN_LIMIT))
            .await
            .unwrap();
        assert_eq!(
            self.worker.join().await,
            ExitStatus::Exited { code: 0 },
            "{}",
            String::from_utf8_lossy(&self.worker.stderr())
        );
    }
}

/// A plain Tokio echo server compiled natively, on the bench's own runtime,
/// no Wasm at all: what this client and machine allow, which puts the target
/// against CPython's `select()` server in proportion.
struct NativeServer {
    accept: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

impl NativeServer {
    async fn start() -> NativeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        NativeServer { accept, addr }
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        // Its connections end when the client closes them.
        self.accept.abort();
    }
}

/// The address the worker announced, waiting for the event.
async fn listening(events: &Arc<EventLog>, worker: &Worker) -> SocketAddr {
    let start = Instant::now();
    loop {
        for e in events.events() {
            if let Event::Listening { addr, .. } = e {
                return addr.parse().expect("a socket address");
            }
        }
        assert!(
            worker.is_alive() && start.elapsed() < RUN_LIMIT,
            "the echo server did not listen: {}",
            String::from_utf8_lossy(&worker.stderr())
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Round trips per second through the echo server at `addr`: `conns`
/// connections, each with one message in flight, `per_conn` round trips
/// each, timed from the first message (connections are made and used once
/// before) to the last echo, while `idle` more connections (each used once
/// before) stay open and silent. Runs on a thread and Tokio runtime of its
/// own, the same for every server measured.
async fn measure(addr: SocketAddr, (conns, per_conn, idle): Shape) -> f64 {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let timed = async {
                    let mut silent = Vec::new();
                    for c in 0..idle {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        round_trips(&mut stream, c, 1).await;
                        silent.push(stream);
                    }
                    let mut streams = Vec::new();
                    for c in 0..conns {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        stream.set_nodelay(true).unwrap();
                        round_trips(&mut stream, c, 1).await;
                        streams.push(stream);
                    }
                    let start = Instant::now();
                    let clients: Vec<_> = streams
                        .into_iter()
                        .enumerate()
                        .map(|(c, mut s)| {
                            tokio::spawn(async move { round_trips(&mut s, c, per_conn).await })
                        })
                        .collect();
                    for client in clients {
                        client.await.unwrap();
                    }
                    (conns * per_conn) as f64 / start.elapsed().as_secs_f64()
                };
                tokio::time::timeout(RUN_LIMIT, timed)
                    .await
                    .expect("an echo run hung")
            })
    })
    .await
    .unwrap()
}

/// Messages in flight, round trips per connection, idle connections.
type Shape = (usize, usize, usize);

/// The median, over runs, of Corral's rate over the native server's in the
/// same run; `None` unless both were measured.
fn native_ratio(corral: &[(f64, Option<f64>)], native: &[(f64, Option<f64>)]) -> Option<f64> {
    if corral.is_empty() || corral.len() != native.len() {
        return None;
    }
    let mut ratios: Vec<f64> = corral.iter().zip(native).map(|(c, n)| c.0 / n.0).collect();
    ratios.sort_by(f64::total_cmp);
    Some(ratios[ratios.len() / 2])
}

/// `n` round trips of distinct messages, each echo checked byte by byte.
async fn round_trips(stream: &mut TcpStream, client: usize, n: usize) {
    let mut message = [client as u8; SIZE];
    let mut echo = [0u8; SIZE];
    for seq in 0..n {
        message[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        stream.write_all(&message).await.unwrap();
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo, message, "client {client}, message {seq}: wrong echo");
    }
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    // (K connections each with one message in flight, round trips each).
    // (K connections each with one message in flight, round trips each,
    // idle connections beside them). The last is the C10k case: most
    // clients connected and quiet, where a server that looks at every
    // connection on every wakeup pays for all of them.
    let shapes: [Shape; 4] = [
        (1, 20_000, 0),
        (100, 1_000, 0),
        (1_000, 200, 0),
        (1, 20_000, 1_000),
    ];
    // 1,000 connections are 1,000 descriptors for the client and as many for
    // each server in this process: past the soft default of 1,024, as
    // `corral` itself raises it.
    corral::ledger::raise_fd_limit();
    let mut rows = Vec::new();
    for shape @ (conns, per_conn, idle) in shapes {
        let flight = match idle {
            0 => format!("{conns} in flight"),
            idle => format!("{conns} in flight beside {idle} idle connections"),
        };
        let select_row = format!("TCP echo, {flight}, vs select()");
        let poll_row = format!("TCP echo, {flight}, wasi:io/poll loop vs select()");
        let asyncio_row = format!("TCP echo, {flight}, vs asyncio");
        let native_row = format!("TCP echo, {flight}, native Tokio server (no Wasm) vs select()");
        if ![&select_row, &poll_row, &asyncio_row, &native_row]
            .iter()
            .any(|row| bench.wants(row))
        {
            continue;
        }
        let corral = CorralServer::start("pollset").await;
        let polling = CorralServer::start("poll").await;
        let native = NativeServer::start().await;
        let (select, asyncio) = if bench.python {
            (
                PythonServer::start("echo_select.py"),
                PythonServer::start("echo_asyncio.py"),
            )
        } else {
            (None, None)
        };
        let (mut vs_select, mut poll_vs_select, mut vs_asyncio, mut native_vs_select) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..=bench.runs {
            let s = match &select {
                Some(server) => Some(measure(server.addr, shape).await),
                None => None,
            };
            let a = match &asyncio {
                Some(server) => Some(measure(server.addr, shape).await),
                None => None,
            };
            // Only the servers of the rows asked for: `--only` then
            // profiles one server alone.
            let wants = |rows: &[&String]| rows.iter().any(|row| bench.wants(row));
            if wants(&[&select_row, &asyncio_row]) {
                let c = measure(corral.addr, shape).await;
                if run > 0 {
                    vs_select.push((c, s));
                    vs_asyncio.push((c, a));
                }
            }
            if wants(&[&poll_row]) {
                let p = measure(polling.addr, shape).await;
                if run > 0 {
                    poll_vs_select.push((p, s));
                }
            }
            if wants(&[&native_row]) {
                let n = measure(native.addr, shape).await;
                if run > 0 {
                    native_vs_select.push((n, s));
                }
            }
        }
        corral.stop().await;
        polling.stop().await;
        let note = format!(
            "msg/s = round trips/s; {} round trips per run of {SIZE}-byte messages over {conns} connection(s){}; one \
             Rust client drives every server; Corral: echo-mux worker, one loop waiting on a corral:worker/pollset",
            conns * per_conn,
            match idle {
                0 => String::new(),
                idle => format!(", with {idle} more connected and silent"),
            }
        );
        // Issue 19: keep the lead with one message in flight; at 100 and
        // 1,000 be at least level with select() (and at 0.8× of the native
        // server, which the note reports).
        let target = Target {
            ratio: Some(if conns == 1 && idle == 0 { 2.0 } else { 1.0 }),
            absolute: None,
        };
        let poll_note = format!(
            "{note}; here the Corral column is echo-mux's `poll` mode: every pollable passed to \
             wasi:io/poll.poll every round, the seed's shape"
        );
        let select_ran = select.is_some();
        let asyncio_ran = asyncio.is_some();
        let native_note = format!(
            "{note}; here the Corral column is a plain Tokio echo server compiled natively, in the bench \
             process, no Wasm: what this client and machine allow"
        );
        let select_note = match native_ratio(&vs_select, &native_vs_select) {
            Some(ratio) => format!(
                "{note}; Corral ÷ native Tokio server, median run by run: {ratio:.2}×{}",
                if conns == 1 && idle == 0 {
                    ""
                } else {
                    " (target ≥0.8×)"
                }
            ),
            None => note.clone(),
        };
        for (workload, pairs, ran, target, note) in [
            (&select_row, &vs_select, select_ran, target, &select_note),
            (
                &poll_row,
                &poll_vs_select,
                select_ran,
                Target::default(),
                &poll_note,
            ),
            (
                &asyncio_row,
                &vs_asyncio,
                asyncio_ran,
                Target::default(),
                &note,
            ),
            (
                &native_row,
                &native_vs_select,
                select_ran,
                Target::default(),
                &native_note,
            ),
        ] {
            if bench.wants(workload) {
                let row = Row::paired(workload, Unit::MsgsPerSec, pairs, ran, target);
                eprintln!(
                    "  {workload}: CPython {:.0} | Corral {:.0} round trips/s",
                    row.cpython.as_ref().map_or(f64::NAN, |s| s.median()),
                    row.corral.median()
                );
                rows.push(row.note(note.clone()));
            }
        }
    }
    rows
}
