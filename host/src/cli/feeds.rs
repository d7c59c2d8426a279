//! The `[[pool]]` stages of `corral up`: each a [`Pool`] fed from one queue
//! into another (see [`crate::feed`]), running beside the manifest's workers.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::signals::{Signals, Stop};
use crate::feed::{FeedOptions, FeedReport, feed_pool};
use crate::manifest::{Manifest, PoolEntry};
use crate::policy::Limits;
use crate::pool::{Pool, PoolOptions, PoolStats};
use crate::run::Run;
use crate::runtime::{Program, Runtime};
use crate::worker::WorkerSpec;

/// Which of the manifest's worker instances (by start index) have ended.
pub(super) type Finished = watch::Sender<Vec<bool>>;

/// When the pools must be done by, once the run is asked to stop: until
/// then they finish the tasks in flight and take no more (`None`: keep
/// going).
pub(super) type PoolDeadline = watch::Sender<Option<Instant>>;

/// A started stage: its name and the task that feeds it to the end.
pub(super) struct Stage {
    name: String,
    task: JoinHandle<StageReport>,
}

/// How a stage ended.
pub(super) struct StageReport {
    feed: FeedReport,
    stats: PoolStats,
    duration: Duration,
}

/// Starts every `[[pool]]` of `manifest` in `run`. `instances` gives the
/// start indices of each `[[worker]]` entry's instances, for `producers`;
/// `finished` is updated by the launcher as workers end.
pub(super) fn start(
    runtime: &Runtime,
    manifest: &Manifest,
    path: &Path,
    run: &Run,
    programs: &mut HashMap<std::path::PathBuf, Program>,
    instances: &HashMap<&str, std::ops::Range<usize>>,
    (finished, deadline): (&Finished, &PoolDeadline),
) -> anyhow::Result<Vec<Stage>> {
    // Each pool says when it is done, so a pool reading another's output
    // knows its producer has ended.
    let done: Vec<watch::Sender<bool>> = manifest
        .pools
        .iter()
        .map(|_| watch::channel(false).0)
        .collect();
    let mut stages = Vec::new();
    for (i, entry) in manifest.pools.iter().enumerate() {
        let context = || format!("{}: pool `{}`", path.display(), entry.name);
        let file = entry.component.get_ref();
        let program = match programs.get(file) {
            Some(p) => p.clone(),
            None => {
                let p = runtime.load(file).with_context(context)?;
                programs.insert(file.clone(), p.clone());
                p
            }
        };
        let pool = Pool::new(runtime, &program, pool_options(entry, manifest, run))
            .with_context(context)?;
        let objects = run.objects();
        let declared = "pool queues are checked against [queues] by the manifest parser";
        let input = objects.queue(&entry.input).expect(declared);
        let output = objects.queue(&entry.output).expect(declared);
        let producers: Vec<usize> = match &entry.producers {
            Some(names) => names
                .iter()
                .flat_map(|n| instances[n.as_str()].clone())
                .collect(),
            None => instances.values().flat_map(Clone::clone).collect(),
        };
        let upstream: Vec<watch::Receiver<bool>> = manifest
            .pools
            .iter()
            .zip(&done)
            .filter(|(other, _)| other.output == entry.input)
            .map(|(_, d)| d.subscribe())
            .collect();
        let mut workers = finished.subscribe();
        let producers_done = async move {
            let _ = workers
                .wait_for(|ended| producers.iter().all(|&p| ended[p]))
                .await;
            for mut pool in upstream {
                let _ = pool.wait_for(|done| *done).await;
            }
        };
        let options = FeedOptions {
            chunk: entry.chunk,
            stops: entry.stops,
        };
        let mut stopping = deadline.subscribe();
        let shutdown = async move {
            // A dropped sender (the run is over) asks nothing.
            if stopping.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let name = entry.name.clone();
        let my_done = done[i].clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let inputs = (producers_done, shutdown);
            let feed = feed_pool(
                &pool,
                &input,
                &output,
                inputs.0,
                inputs.1,
                options,
                |n, e| {
                    eprintln!("corral: pool {name}: input {n}: task failed: {e}");
                },
            )
            .await;
            my_done.send_replace(true);
            pool.close();
            let _ = pool.join().await;
            StageReport {
                feed,
                stats: pool.stats(),
                duration: started.elapsed(),
            }
        });
        stages.push(Stage {
            name: entry.name.clone(),
            task,
        });
    }
    Ok(stages)
}

fn pool_options(entry: &PoolEntry, manifest: &Manifest, run: &Run) -> PoolOptions {
    PoolOptions {
        workers: entry.workers.unwrap_or(PoolOptions::default().workers),
        task_timeout: entry.task_timeout,
        retries: entry.retries,
        worker: WorkerSpec {
            name: entry.name.clone(),
            env: entry
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            limits: Limits {
                memory: entry.memory.or(manifest.defaults.memory),
                ..Limits::default()
            },
            run: run.clone(),
            mounts: entry.mounts.clone(),
            ..WorkerSpec::default()
        },
        ..PoolOptions::default()
    }
}

/// Waits for every stage to finish (all workers have ended by now, so each
/// stage's producers have too). Once the run is stopped (by a signal,
/// before or now), a stage takes no more input and has until `deadline`
/// to finish its tasks in flight, past which (or on another signal) it is
/// terminated; a run `cut_short` (a worker could not start, so a stage
/// may wait on a consumer that is gone) stops them at once. Prints one
/// line per stage unless `quiet`; returns whether every task of every
/// stage succeeded, and the signal that stopped the stages here, if one
/// did.
pub(super) async fn finish(
    stages: Vec<Stage>,
    (stopped, cut_short): (Option<Stop>, bool),
    (deadline, grace): (&PoolDeadline, Duration),
    quiet: bool,
    signals: &mut Signals,
) -> (bool, Option<Stop>) {
    let mut all_ok = true;
    let mut stopped_here = None;
    let width = stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for stage in stages {
        if cut_short {
            // Dropping the pool terminates its instances.
            stage.task.abort();
            all_ok = false;
            continue;
        }
        let abort = stage.task.abort_handle();
        let mut task = stage.task;
        let report = loop {
            let by = *deadline.borrow();
            tokio::select! {
                biased;
                joined = &mut task => break joined.ok(),
                () = tokio::time::sleep_until(by.unwrap_or_else(Instant::now).into()), if by.is_some() => {
                    eprintln!("corral: pool {}: grace period over; terminating it", stage.name);
                    abort.abort();
                    break None;
                }
                stop = signals.recv() => {
                    let first = stopped.or(stopped_here).is_none();
                    stopped_here.get_or_insert(stop);
                    if first && !grace.is_zero() {
                        eprintln!(
                            "corral: {}; pool {} finishes its tasks in flight (grace {})",
                            stop.describe(),
                            stage.name,
                            humantime::format_duration(grace)
                        );
                        deadline.send_replace(Some(Instant::now() + grace));
                        continue;
                    }
                    eprintln!("corral: {}; terminating pool {}", stop.describe(), stage.name);
                    abort.abort();
                    deadline.send_replace(Some(Instant::now()));
                    break None;
                }
            }
        };
        let Some(report) = report else {
            all_ok = false;
            continue;
        };
        all_ok &= report.feed.failed == 0;
        if !quiet {
            let FeedReport {
                succeeded,
                failed,
                end,
            } = report.feed;
            eprintln!(
                "{:width$}  pool: {} tasks, {succeeded} ok, {failed} failed (end of input: {end}); \
                 {} instances  ({:.1} ms)",
                stage.name,
                succeeded + failed,
                report.stats.instances_started,
                report.duration.as_secs_f64() * 1e3
            );
        }
    }
    (all_ok, stopped_here)
}
