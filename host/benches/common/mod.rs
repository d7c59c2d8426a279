//! Shared by the bench binaries: statistics, the CPython baseline runner,
//! the results table and the JSON record under `bench/results/`.
#![allow(dead_code)] // each bench binary uses a different subset

use std::path::PathBuf;
use std::process::Command;

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

/// A series of measurements of one quantity (one per run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Series {
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(mut values: Vec<f64>) -> Series {
        values.sort_by(f64::total_cmp);
        Series { values }
    }
    pub fn median(&self) -> f64 {
        let v = &self.values;
        if v.is_empty() {
            return f64::NAN;
        }
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    }
    pub fn min(&self) -> f64 {
        self.values.first().copied().unwrap_or(f64::NAN)
    }
    pub fn max(&self) -> f64 {
        self.values.last().copied().unwrap_or(f64::NAN)
    }
}

/// Runs one of the CPython baseline scripts in `bench/python/` with the given
/// interpreter flags and script arguments, and parses the JSON object it
/// prints. `None` (with a note) when python3 is unavailable or fails.
pub fn python(flags: &[&str], script: &str, args: &[&str]) -> Option<serde_json::Value> {
    let path = root().join("bench/python").join(script);
    let out = Command::new("python3")
        .args(flags)
        .arg(&path)
        .args(args)
        .output();
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
        Err(e) => {
            eprintln!("cannot run python3 for {script}: {e}");
            None
        }
    }
}

/// Extracts a list of numbers from a JSON value by pointer, e.g. `/fork/batch_us`.
pub fn series_at(value: &Option<serde_json::Value>, pointer: &str) -> Option<Series> {
    let list = value.as_ref()?.pointer(pointer)?.as_array()?;
    Some(Series::new(
        list.iter().filter_map(|v| v.as_f64()).collect(),
    ))
}

/// One row of the comparison table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub workload: String,
    pub unit: String,
    /// Lower is better when true (times); higher is better otherwise.
    pub lower_is_better: bool,
    pub corral: Series,
    pub cpython: Option<Series>,
    pub note: String,
}

impl Row {
    /// How many times better Corral is than CPython, from the medians.
    pub fn ratio(&self) -> Option<f64> {
        let c = self.cpython.as_ref()?.median();
        let r = self.corral.median();
        Some(if self.lower_is_better { c / r } else { r / c })
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_series(s: &Series) -> String {
    format!(
        "{} ({}–{})",
        fmt_num(s.median()),
        fmt_num(s.min()),
        fmt_num(s.max())
    )
}

/// Prints the table: workload, CPython, Corral, ratio (medians, min–max).
pub fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!("median of runs (min–max); ratio = how many times better Corral is\n");
    let header = ["workload", "unit", "CPython", "Corral", "ratio"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.unit.clone(),
                r.cpython.as_ref().map_or("-".into(), fmt_series),
                fmt_series(&r.corral),
                r.ratio().map_or("-".into(), |x| format!("{x:.1}×")),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |c: &[&str]| {
        let parts: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&header);
    for c in &cells {
        line(&c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        println!("  {}: {}", r.workload, r.note);
    }
}

/// Writes the rows with the date, machine and versions to
/// `bench/results/<name>-<unix time>.json`.
pub fn write_results(name: &str, rows: &[Row]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
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
        "machine": { "cpu": cpu, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "versions": { "corral": env!("CARGO_PKG_VERSION"), "wasmtime": "48.0.8", "python": python },
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
