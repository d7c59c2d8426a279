//! `corral pool`: run a task component over every line of an input.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use clap::Args;

use super::observers::{self, ObserveArgs};
use super::signals::{Signals, Stop};
use crate::output::Stdio;
use crate::policy::Limits;
use crate::pool::{Pool, PoolOptions, TaskResult};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::units::{parse_duration, parse_size};
use crate::vfs::MountSpec;
use crate::worker::WorkerSpec;

/// Exit code when some task failed.
const EXIT_TASK_FAILED: u8 = 1;
/// Exit code when some input line was malformed (and skipped).
const EXIT_BAD_INPUT: u8 = 2;
/// How long a result may wait in the output buffer: a reader at the other
/// end of a pipe sees results as they come, not only when 8 KiB are full.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Args)]
pub(super) struct PoolArgs {
    /// The task component (exports corral:worker/task)
    file: PathBuf,
    /// Instances running tasks at once [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Read inputs from FILE, one per line ('-' or absent: stdin)
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Write outputs to FILE ('-' or absent: stdout)
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write results as tasks finish, not in input order
    #[arg(long)]
    unordered: bool,
    /// Inputs per job (fewer host/guest round trips) [default: 1]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    chunk: Option<u64>,
    /// Inputs are JSON values, one per line; outputs are JSON objects
    #[arg(long)]
    json: bool,
    /// Fail a task that runs longer than this
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Run a task that trapped or timed out again, up to N times
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Give the pool up past N instances replaced after failures in 60 s
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_replacements: u32,
    /// Replace an instance after it ran K tasks
    #[arg(long, value_name = "K")]
    max_tasks_per_worker: Option<u64>,
    /// A fresh instance for every task (strongest isolation)
    #[arg(long)]
    fresh: bool,
    /// Cap on each instance's linear memory
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Give the instances a directory (as `corral run --mount`)
    #[arg(long = "mount", value_name = "SOURCE:GUEST[:ro|rw]", value_parser = str::parse::<MountSpec>)]
    mounts: Vec<MountSpec>,
    #[command(flatten)]
    observe: ObserveArgs,
}

/// One input line: its number (from 1) and its bytes, or why it is unusable.
type Line = (u64, Result<Vec<u8>, String>);

pub(super) async fn pool(
    mut config: RuntimeConfig,
    quiet: bool,
    args: PoolArgs,
    max_workers: Option<u32>,
) -> anyhow::Result<u8> {
    let workers = args.workers.unwrap_or(PoolOptions::default().workers);
    // One slot per instance: a slot replaces its instance only after
    // dropping the old one.
    config.engine.max_workers =
        max_workers.unwrap_or_else(|| u32::try_from(workers).unwrap_or(u32::MAX));
    let runtime = Runtime::new(config)?;
    let program = runtime.load(&args.file)?;
    let mut signals = Signals::install()?;
    let name = args.file.file_stem().unwrap_or_default().to_string_lossy();
    let _observers = observers::start(&runtime, "pool", &name, &args.observe, quiet).await?;
    let total = match &args.input {
        Some(path) if path.as_os_str() != "-" => Some(count_lines(path)?),
        _ => None,
    };
    let name = args
        .file
        .file_stem()
        .map_or_else(|| "task".into(), |s| s.to_string_lossy().into_owned());
    let options = PoolOptions {
        workers,
        max_tasks_per_worker: args.max_tasks_per_worker,
        fresh_instance_per_task: args.fresh,
        task_timeout: args.timeout,
        retries: args.retries,
        max_replacements: args.max_replacements,
        worker: WorkerSpec {
            name,
            limits: Limits {
                memory: args.memory,
                ..Limits::default()
            },
            mounts: args.mounts.clone(),
            stdio: Stdio::ConsoleStderr,
            ..WorkerSpec::default()
        },
        ..PoolOptions::default()
    };
    let pool = Pool::new(&runtime, &program, options)?;

    let lines = read_lines(args.input.clone(), args.json);
    // Line numbers of inputs in flight, by their index among good inputs.
    let in_flight: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    let bad_lines = Arc::new(Mutex::new(0u64));
    let inputs = {
        let in_flight = in_flight.clone();
        let bad_lines = bad_lines.clone();
        let mut index = 0usize;
        lines.filter_map(move |(number, line)| {
            let input = match line {
                Ok(bytes) => {
                    in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(index, number);
                    index += 1;
                    Some(bytes)
                }
                Err(why) => {
                    eprintln!("corral: input line {number}: {why}; skipped");
                    *bad_lines.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    None
                }
            };
            std::future::ready(input)
        })
    };
    let chunk = args.chunk.unwrap_or(1) as usize;
    let mut results: std::pin::Pin<Box<dyn futures::Stream<Item = (usize, TaskResult)> + Send>> =
        if args.unordered {
            Box::pin(pool.imap_unordered_stream(inputs, chunk))
        } else {
            Box::pin(pool.imap_stream(inputs, chunk).enumerate())
        };

    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        _ => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let progress = progress_bar(total, quiet);
    let started = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    let mut stopped: Option<Stop> = None;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unflushed = false;
    loop {
        let (index, result) = tokio::select! {
            biased;
            stop = signals.recv() => {
                pool.terminate();
                stopped = Some(stop);
                progress.suspend(|| {
                    eprintln!("corral: {}: the pool stops; what is left of the input is not run", stop.describe())
                });
                break;
            }
            next = results.next() => match next {
                Some(next) => next,
                None => break,
            },
            // `corral kill`: the results still owed fail, but one of a
            // pool waiting for input never comes, so this says it.
            () = pool.terminated() => {
                let first = in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .min()
                    .copied();
                progress.suspend(|| match first {
                    Some(line) => eprintln!("corral: the pool was terminated at line {line}"),
                    None => eprintln!("corral: the pool was terminated"),
                });
                break;
            }
            _ = flush.tick(), if unflushed => {
                out.flush()?;
                unflushed = false;
                continue;
            }
        };
        let line = in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index)
            .unwrap_or_default();
        match &result {
            Ok(_) => done += 1,
            // `corral kill`: what is left of the input is not run.
            Err(_) if pool.is_terminated() => {
                failed += 1;
                progress.suspend(|| eprintln!("corral: the pool was terminated at line {line}"));
                break;
            }
            Err(e) => {
                failed += 1;
                progress.suspend(|| eprintln!("corral: line {line}: task failed: {e}"));
            }
        }
        write_result(&mut *out, line, result, args.json)?;
        unflushed = true;
        progress.inc(1);
    }
    out.flush()?;
    progress.finish_and_clear();
    drop(results);
    pool.close();
    let _ = pool.join().await;
    let bad = *bad_lines.lock().unwrap_or_else(|e| e.into_inner());
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "corral: {} tasks: {done} done, {failed} failed{} in {secs:.2} s ({:.0} tasks/s)",
            done + failed,
            if bad > 0 {
                format!(", {bad} bad input lines skipped")
            } else {
                String::new()
            },
            (done + failed) as f64 / secs.max(1e-9)
        );
    }
    Ok(if let Some(stop) = stopped {
        stop.exit_code()
    } else if bad > 0 {
        EXIT_BAD_INPUT
    } else if failed > 0 || pool.is_terminated() {
        EXIT_TASK_FAILED
    } else {
        0
    })
}

/// Writes one result: raw output bytes and a newline, or (with `--json`) a
/// JSON object `{"line": N, "ok": ...}` / `{"line": N, "error": "..."}`.
/// In raw mode a failed task writes nothing (it is reported on stderr).
fn write_result(
    out: &mut dyn Write,
    line: u64,
    result: TaskResult,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let value = match result {
            Ok(bytes) => {
                let ok = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
                });
                serde_json::json!({ "line": line, "ok": ok })
            }
            Err(e) => serde_json::json!({ "line": line, "error": e.to_string() }),
        };
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    } else if let Ok(bytes) = result {
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn count_lines(path: &PathBuf) -> anyhow::Result<u64> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(std::io::BufReader::new(file).split(b'\n').count() as u64)
}

/// Reads input lines on a thread of their own (stdin may be slow or a
/// terminal), handing them to the pool as a stream. With `json`, a line that
/// is not JSON is reported with its number instead of becoming a task.
fn read_lines(
    input: Option<PathBuf>,
    json: bool,
) -> impl futures::Stream<Item = Line> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Line>(1024);
    std::thread::spawn(move || {
        let reader: Box<dyn BufRead> = match &input {
            Some(path) if path.as_os_str() != "-" => match std::fs::File::open(path) {
                Ok(f) => Box::new(std::io::BufReader::new(f)),
                Err(e) => {
                    let _ =
                        tx.blocking_send((0, Err(format!("cannot read {}: {e}", path.display()))));
                    return;
                }
            },
            _ => Box::new(std::io::stdin().lock()),
        };
        for (i, line) in reader.split(b'\n').enumerate() {
            let number = i as u64 + 1;
            let line = match line {
                Ok(mut bytes) => {
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                    if json {
                        serde_json::from_slice::<serde_json::Value>(&bytes)
                            .map(|_| bytes)
                            .map_err(|e| format!("not valid JSON ({e})"))
                    } else {
                        Ok(bytes)
                    }
                }
                Err(e) => Err(format!("cannot read: {e}")),
            };
            if tx.blocking_send((number, line)).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    })
}

/// A progress bar on a terminal (done/total, rate, ETA); hidden otherwise.
fn progress_bar(total: Option<u64>, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{bar:30} {pos}/{len} tasks  {per_sec}  ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {pos} tasks  {per_sec}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
