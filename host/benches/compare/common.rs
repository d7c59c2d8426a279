//! Shared by the areas of the bench: the run loop that alternates CPython and
//! Corral runs, statistics, the CPython baseline driver, the results table
//! and the JSON record under `bench/results/`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use corral::{EngineOptions, Runtime, RuntimeConfig};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The path of a guest built by `make guests`.
pub fn guest(name: &str) -> PathBuf {
    let path = root().join(format!(
        "guests/rust/target/wasm32-wasip2/release/{name}.wasm"
    ));
    assert!(
        path.exists(),
        "{} is missing: run `make guests`",
        path.display()
    );
    path
}

/// A runtime with room for `max_workers`, caching compiled guests under
/// `target/` so only the first bench run compiles them.
pub fn runtime(max_workers: u32) -> Runtime {
    runtime_with(EngineOptions {
        max_workers,
        ..EngineOptions::default()
    })
}

/// Set by `--small-engine`: engines reserve 64 MiB per linear memory
/// instead of 4 GiB, so that valgrind, which cannot map hundreds of GiB,
/// can run the bench (for instruction counts with callgrind).
pub static SMALL_ENGINE: AtomicBool = AtomicBool::new(false);

/// A runtime with these engine options (see [`runtime`]).
pub fn runtime_with(mut engine: EngineOptions) -> Runtime {
    if SMALL_ENGINE.load(Ordering::Relaxed) {
        engine.memory_reservation = 64 << 20;
        engine.max_memory_per_worker = 64 << 20;
        engine.memory_guard = 64 << 10;
    }
    Runtime::new(RuntimeConfig {
        engine,
        cache_dir: Some(root().join("target/bench-compile-cache")),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Seconds since `start`.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Measurements of one quantity, one per run, in run order (run `i` of
/// Corral pairs with run `i` of CPython).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Series {
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(values: Vec<f64>) -> Series {
        Series { values }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .values
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// What a row is measured in.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub enum Unit {
    MicrosPerWorker,
    TasksPerSec,
    MsgsPerSec,
    MibPerSec,
    MicrosPerRoundTrip,
    MicrosPerRestart,
    NanosPerOp,
    AppendsPerSec,
    KibPerWorker,
    MapsPerWorker,
    Workers,
    MillisPerScrape,
    MibPerScrape,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::MicrosPerWorker => "µs/worker",
            Unit::TasksPerSec => "tasks/s",
            Unit::MsgsPerSec => "msg/s",
            Unit::MibPerSec => "MiB/s",
            Unit::MicrosPerRoundTrip => "µs/round trip",
            Unit::MicrosPerRestart => "µs/restart",
            Unit::NanosPerOp => "ns/op",
            Unit::AppendsPerSec => "appends/s",
            Unit::KibPerWorker => "KiB/worker",
            Unit::MapsPerWorker => "maps/worker",
            Unit::Workers => "workers",
            Unit::MillisPerScrape => "ms/scrape",
            Unit::MibPerScrape => "MiB/scrape",
        }
    }

    /// Times and costs are better low; rates and counts high.
    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            Unit::MicrosPerWorker
                | Unit::MicrosPerRoundTrip
                | Unit::MicrosPerRestart
                | Unit::NanosPerOp
                | Unit::KibPerWorker
                | Unit::MapsPerWorker
                | Unit::MillisPerScrape
                | Unit::MibPerScrape
        )
    }
}

/// What a row is held to: a ratio over CPython (issue 7) and/or an
/// absolute figure (issues 3, 4, 5), in the row's unit.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Target {
    pub ratio: Option<f64>,
    pub absolute: Option<f64>,
}

/// One row of the comparison table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub workload: String,
    pub unit: Unit,
    pub corral: Series,
    pub cpython: Option<Series>,
    /// How many times better Corral is than CPython, run by run.
    pub ratio: Option<Series>,
    pub target: Target,
    pub note: String,
}

impl Row {
    /// A row without a CPython counterpart.
    pub fn corral_only(workload: &str, unit: Unit, corral: Vec<f64>, target: Target) -> Row {
        Row {
            workload: workload.into(),
            unit,
            corral: Series::new(corral),
            cpython: None,
            ratio: None,
            target,
            note: String::new(),
        }
    }

    /// A row from paired runs: `pairs[i]` is run i of (Corral, CPython).
    pub fn paired(
        workload: &str,
        unit: Unit,
        pairs: &[(f64, Option<f64>)],
        cpython_ran: bool,
        target: Target,
    ) -> Row {
        let ratio = |c: f64, p: f64| if unit.lower_is_better() { p / c } else { c / p };
        Row {
            workload: workload.into(),
            unit,
            corral: Series::new(pairs.iter().map(|p| p.0).collect()),
            cpython: cpython_ran.then(|| Series::new(pairs.iter().filter_map(|p| p.1).collect())),
            ratio: cpython_ran.then(|| {
                Series::new(
                    pairs
                        .iter()
                        .filter_map(|&(c, p)| p.map(|p| ratio(c, p)))
                        .collect(),
                )
            }),
            target,
            note: String::new(),
        }
    }

    /// Adds a note printed under the table.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// Whether the median meets every target the row has (`None`: no
    /// target, or nothing measured).
    pub fn meets(&self) -> Option<bool> {
        let mut verdict = None;
        if let (Some(want), Some(r)) = (self.target.ratio, &self.ratio) {
            let got = r.median();
            if got.is_finite() {
                verdict = Some(got >= want);
            }
        }
        if let Some(want) = self.target.absolute {
            let got = self.corral.median();
            if got.is_finite() {
                let ok = if self.unit.lower_is_better() {
                    got <= want
                } else {
                    got >= want
                };
                verdict = Some(verdict.unwrap_or(true) && ok);
            }
        }
        verdict
    }
}

/// One of the CPython baseline scripts in `bench/python/`, driven run by run
/// (its `--serve` mode: one figure per line read).
pub struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    script: String,
}

impl Python {
    /// Starts `python3 FLAGS bench/python/SCRIPT ARGS --serve`. `None` (with
    /// a message) when python3 cannot be started.
    pub fn start(flags: &[&str], script: &str, args: &[&str]) -> Option<Python> {
        let path = root().join("bench/python").join(script);
        let spawned = Command::new("python3")
            .args(flags)
            .arg(&path)
            .args(args)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Ok(mut child) => Some(Python {
                stdin: child.stdin.take().expect("piped"),
                stdout: BufReader::new(child.stdout.take().expect("piped")),
                child,
                script: format!("{script} {}", args.join(" ")),
            }),
            Err(e) => {
                eprintln!("cannot run python3 for {script}: {e}");
                None
            }
        }
    }

    /// Runs the workload once and returns its figure; `None` if the script
    /// failed (its traceback is on stderr).
    pub fn run(&mut self) -> Option<f64> {
        // The script holds the CPU while it runs; Corral has nothing to do.
        tokio::task::block_in_place(|| {
            self.stdin.write_all(b"run\n").ok()?;
            self.stdin.flush().ok()?;
            let mut line = String::new();
            self.stdout.read_line(&mut line).ok()?;
            let value = line.trim().parse::<f64>().ok();
            if value.is_none() {
                eprintln!("{}: no figure (failed?)", self.script);
            }
            value
        })
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        // The serve loop would wait on stdin forever.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the bench is run: runs per row, whether CPython runs, which rows.
pub struct Bench {
    pub runs: usize,
    pub python: bool,
    pub only: Vec<String>,
}

impl Bench {
    /// Whether the row named `workload` is selected (`--only`).
    pub fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| workload.contains(o.as_str()))
    }

    /// Measures one row: a warm-up, then `runs` runs, each a CPython run
    /// followed by a Corral run, so both see the same moment of a noisy
    /// machine and each ratio is taken run by run. `cpython` is
    /// `(interpreter flags, script, args)`.
    pub async fn row<F: Future<Output = f64>>(
        &self,
        workload: &str,
        unit: Unit,
        target: Target,
        cpython: Option<(&[&str], &str, &[&str])>,
        mut corral: impl FnMut() -> F,
    ) -> Option<Row> {
        if !self.wants(workload) {
            return None;
        }
        let mut python = match cpython {
            Some((flags, script, args)) if self.python => Python::start(flags, script, args),
            _ => None,
        };
        let cpython_ran = python.is_some();
        let mut pairs = Vec::new();
        for run in 0..=self.runs {
            let p = python.as_mut().and_then(Python::run);
            let c = corral().await;
            if run > 0 {
                pairs.push((c, p));
            }
        }
        let row = Row::paired(workload, unit, &pairs, cpython_ran, target);
        eprintln!(
            "  {workload}: CPython {} | Corral {} {}",
            row.cpython
                .as_ref()
                .map_or("-".into(), |s| fmt_num(s.median())),
            fmt_num(row.corral.median()),
            unit.label()
        );
        Some(row)
    }
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x.is_nan() {
        "-".into()
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e5 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_series(s: &Series) -> String {
    if s.values.is_empty() {
        return "-".into();
    }
    format!(
        "{} ({}–{})",
        fmt_num(s.median()),
        fmt_num(s.min()),
        fmt_num(s.max())
    )
}

fn fmt_target(row: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(r) = row.target.ratio {
        parts.push(format!("≥{r}×"));
    }
    if let Some(a) = row.target.absolute {
        let op = if row.unit.lower_is_better() {
            "≤"
        } else {
            "≥"
        };
        parts.push(format!("{op}{}", fmt_num(a)));
    }
    parts.join(", ")
}

/// Prints the table: workload, unit, CPython, Corral, ratio (medians, with
/// min–max), target, and whether the target is met.
pub fn print_table(rows: &[Row], runs: usize) {
    println!("\nCorral vs CPython multiprocessing, same machine, same run");
    println!(
        "median of {runs} runs after a warm-up (min–max); ratio = how many times better \
         Corral is, taken run by run; differences under 30% are noise here, not claims\n"
    );
    let header = [
        "workload", "unit", "CPython", "Corral", "ratio", "target", "met",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.clone(),
                r.unit.label().into(),
                r.cpython.as_ref().map_or("-".into(), fmt_series),
                fmt_series(&r.corral),
                r.ratio.as_ref().map_or("-".into(), |s| {
                    if s.values.is_empty() {
                        "-".into()
                    } else {
                        format!(
                            "{}× ({}–{})",
                            fmt_num(s.median()),
                            fmt_num(s.min()),
                            fmt_num(s.max())
                        )
                    }
                }),
                fmt_target(r),
                match r.meets() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "".into(),
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&header.map(String::from));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        line(c);
    }
    println!();
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        println!("- {}: {}", r.workload, r.note);
    }
}

/// Writes the rows with the date, machine and versions to
/// `bench/results/<name>-<unix time>.json`.
pub fn write_results(name: &str, rows: &[Row], runs: usize) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let output = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text).trim().to_string()
            })
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let record = serde_json::json!({
        "bench": name,
        "unix_time": now,
        "date": output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "runs": runs,
        "machine": {
            "cpu": cpu,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": output("uname", &["-r"]),
            "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        },
        "versions": {
            "corral": env!("CARGO_PKG_VERSION"),
            "wasmtime": "48.0.8",
            "python": output("python3", &["--version"]),
            "rustc": output("rustc", &["--version"]),
        },
        "rows": rows,
    });
    let dir = root().join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}-{now}.json"));
    match std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()) {
        Ok(()) => println!("\nresults written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Number of memory mappings of this process (bounded by vm.max_map_count).
pub fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}
