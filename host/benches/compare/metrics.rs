//! What watching a host costs (issue 18): the queue 1→1 and pipe round
//! trip rows with the Prometheus endpoint off and on, run by run in turn,
//! "on" meaning served and scraped every 100 ms (Prometheus's default is
//! every 15 s); and one scrape of a host of 10,000 idle workers: its time
//! and how far the heap grows while it is served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use corral::observe::MetricsServer;
use corral::{Program, Runtime, Stdio, WorkerSpec};

use crate::common::{Bench, Python, Row, Target, Unit, guest, runtime};
use crate::heap;
use crate::ipc;

/// How often the "on" rows scrape.
const EVERY: Duration = Duration::from_millis(100);
/// Idle workers in the scrape rows.
const IDLE: usize = 10_000;

/// GETs `/metrics` at `addr` and returns the body's length, reading into a
/// fixed buffer so the client allocates nothing while the heap is watched.
fn scrape(addr: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).expect("metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64 << 10];
    let mut total = 0;
    let mut head = Vec::new();
    loop {
        let n = stream.read(&mut buf).expect("scrape read");
        if n == 0 {
            break;
        }
        if head.len() < 16 {
            head.extend_from_slice(&buf[..n.min(16)]);
        }
        total += n;
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "scrape failed");
    total
}

/// The endpoint of `rt`, scraped every [`EVERY`] by a thread until dropped.
struct Watched {
    _server: MetricsServer,
    stop: Arc<AtomicBool>,
    scraper: Option<std::thread::JoinHandle<usize>>,
}

impl Watched {
    async fn start(rt: &Runtime) -> Watched {
        let rt = rt.clone();
        let server = MetricsServer::start(move || rt.snapshot(), ([127, 0, 0, 1], 0).into(), false)
            .await
            .expect("metrics endpoint");
        let (addr, stop) = (server.addr, Arc::new(AtomicBool::new(false)));
        let stopped = stop.clone();
        let scraper = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !stopped.load(Ordering::Relaxed) {
                scrape(addr);
                scrapes += 1;
                std::thread::sleep(EVERY);
            }
            scrapes
        });
        Watched {
            _server: server,
            stop,
            scraper: Some(scraper),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let scrapes = self.scraper.take().unwrap().join().unwrap();
        assert!(scrapes > 0, "the endpoint was never scraped");
    }
}

/// Runs `workload` with metrics off and on, in turn, run by run (plus one
/// unmeasured warm-up of each), beside CPython's same workload; returns
/// the off row and the on row, whose note gives the on/off ratio.
async fn off_and_on<F: Future<Output = f64>>(
    bench: &Bench,
    rt: &Runtime,
    (workload, unit, target): (&str, Unit, Target),
    python: (&str, &[&str]),
    mut corral: impl FnMut() -> F,
) -> Vec<Row> {
    let off_name = format!("{workload}, metrics off");
    let on_name = format!("{workload}, metrics on (scraped every 100 ms)");
    if !bench.wants(&off_name) && !bench.wants(&on_name) {
        return Vec::new();
    }
    let mut py = bench
        .python
        .then(|| Python::start(&[], python.0, python.1))
        .flatten();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for run in 0..=bench.runs {
        let p = py.as_mut().and_then(Python::run);
        let o = corral().await;
        let watched = Watched::start(rt).await;
        let w = corral().await;
        drop(watched);
        if run > 0 {
            off.push((o, p));
            on.push((w, p));
        }
    }
    let ratios: Vec<f64> = off.iter().zip(&on).map(|(o, w)| w.0 / o.0).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    eprintln!("  {workload}: metrics on/off {median:.3}× (runs: {ratios:.3?})");
    let ran = py.is_some();
    vec![
        Row::paired(&off_name, unit, &off, ran, target),
        Row::paired(&on_name, unit, &on, ran, target).note(format!(
            "on ÷ off, run by run: median {median:.3}× (target: within 3% of off)"
        )),
    ]
}

/// Spawns [`IDLE`] sleeping workers and waits until all are asleep.
async fn idle_host(rt: &Runtime, sleepy: &Program) -> Vec<corral::Worker> {
    let workers: Vec<_> = (0..IDLE)
        .map(|i| {
            let name = format!("idle{}-{i}", i % 10);
            rt.spawn(sleepy, WorkerSpec::new(name).stdio(Stdio::Capture))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    while workers.iter().any(|w| !w.stdout().starts_with(b"sleeping")) {
        assert!(Instant::now() < deadline, "idle workers did not start");
        assert!(workers.iter().all(|w| w.is_alive()), "an idle worker died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers
}

/// Milliseconds and heap growth (MiB) of each of `runs` scrapes of a host
/// of [`IDLE`] idle workers, with or without per-worker series.
async fn idle_scrapes(rt: &Runtime, per_worker: bool, runs: usize) -> (Vec<f64>, Vec<f64>) {
    let snapshot_of = rt.clone();
    let server = MetricsServer::start(
        move || snapshot_of.snapshot(),
        ([127, 0, 0, 1], 0).into(),
        per_worker,
    )
    .await
    .expect("metrics endpoint");
    let addr = server.addr;
    let (mut millis, mut mib) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let (took, grew, bytes) = tokio::task::spawn_blocking(move || {
            heap::watch();
            let start = Instant::now();
            let bytes = scrape(addr);
            let took = start.elapsed();
            (took, heap::peak_growth(), bytes)
        })
        .await
        .unwrap();
        assert!(bytes > 1000, "a scrape of {bytes} bytes");
        if run > 0 {
            millis.push(took.as_secs_f64() * 1e3);
            mib.push(grew as f64 / (1 << 20) as f64);
        }
    }
    (millis, mib)
}

pub async fn rows(bench: &Bench) -> Vec<Row> {
    let rt = runtime(64);
    let program = rt.load(guest("bench-ipc")).expect("bench-ipc guest");
    let (rt, program) = (&rt, &program);
    let mut rows = Vec::new();
    rows.extend(
        off_and_on(
            bench,
            rt,
            ("Queue 1→1, 64 B", Unit::MsgsPerSec, Target::default()),
            ("queues.py", &["q", "--n", "50000", "--size", "64"]),
            move || ipc::queue(rt, program, 1, 1, 500_000, 64, 1, 1024),
        )
        .await,
    );
    rows.extend(
        off_and_on(
            bench,
            rt,
            (
                "Pipe round trip, 64 B",
                Unit::MicrosPerRoundTrip,
                Target::default(),
            ),
            ("pipes.py", &["rtt", "--n", "20000", "--size", "64"]),
            move || ipc::round_trip(rt, program, 100_000, 64),
        )
        .await,
    );

    let scrape_rows = [
        ("Scrape of 10,000 idle workers", false),
        ("Scrape of 10,000 idle workers, per-worker series", true),
    ];
    if !scrape_rows.iter().any(|(name, _)| bench.wants(name)) {
        return rows;
    }
    let big = runtime(IDLE as u32 + 16);
    let sleepy = big.load(guest("sleepy")).expect("sleepy guest");
    let workers = idle_host(&big, &sleepy).await;
    for (name, per_worker) in scrape_rows {
        let (millis, mib) = idle_scrapes(&big, per_worker, bench.runs).await;
        eprintln!(
            "  {name}: {:.1} ms, heap +{:.2} MiB",
            median(&millis),
            median(&mib)
        );
        let time = Target {
            ratio: None,
            absolute: Some(100.0),
        };
        let heap = Target {
            ratio: None,
            absolute: Some(10.0),
        };
        rows.push(
            Row::corral_only(
                &format!("{name}: time"),
                Unit::MillisPerScrape,
                millis,
                time,
            )
            .note("one GET /metrics over loopback, 10 groups of 1,000"),
        );
        rows.push(
            Row::corral_only(&format!("{name}: heap"), Unit::MibPerScrape, mib, heap)
                .note("how far the host's heap grew, at most, while serving it"),
        );
    }
    for w in &workers {
        w.terminate();
    }
    for w in &workers {
        w.join().await;
    }
    rows
}

fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
