//! `corral run` and `corral up`: start workers, stream their output, wait for
//! them all, report how each ended.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::feeds::{self, Finished, PoolDeadline};
use super::observers::{self, ObserveArgs};
use super::signals::{Signals, Stop};
use super::summary::{print_summary, run_exit_code};
use super::{BackendArgs, FsArgs, RunArgs};
use crate::events::Event;
use crate::ipc::Backend;
use crate::ipc::redis::{RedisBackend, RedisConfig};
use crate::manifest::{FilesystemEntry, Manifest, Placement};
use crate::output::Stdio;
use crate::policy::{Limits, Profile, SpawnPolicy};
use crate::pool::PoolOptions;
use crate::restart::Restart;
use crate::run::Run;
use crate::runtime::{EngineOptions, Program, Runtime, RuntimeConfig};
use crate::status::ExitStatus;
use crate::vfs::{Limits as FsLimits, MountSpec};
use crate::worker::{Stdin, Worker, WorkerReport, WorkerSpec};

/// What the user asked of the run besides its workers: what to see, and
/// how long workers asked to stop get.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ui {
    pub quiet: bool,
    pub json_events: bool,
    /// After SIGINT or SIGTERM, how long the workers have to finish up
    /// (their `shutdown-requested` is ready) before they are terminated.
    pub shutdown_grace: std::time::Duration,
}

/// How long the summary waits for worker output still queued for the
/// console: a reader that stopped reading does not hold it up for long.
const SUMMARY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn run(
    mut config: RuntimeConfig,
    ui: Ui,
    args: RunArgs,
    max_workers: Option<u32>,
) -> anyhow::Result<u8> {
    let env = args
        .env
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(item)
                .map(|v| (item.clone(), v))
                .with_context(|| {
                    format!("--env {item}: the host has no variable {item} to pass through")
                }),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(name) = &args.name {
        // `/` is reserved for spawned children (`parent/child`), which is
        // what keeps a child from taking a top-level worker's name.
        anyhow::ensure!(
            !name.is_empty()
                && !name
                    .chars()
                    .any(|c| c == '/' || c.is_whitespace() || c.is_control()),
            "--name {name:?}: a worker name must be non-empty and contain no spaces, \
             control characters or `/`"
        );
    }
    let base = args.name.clone().unwrap_or_else(|| stem(&args.file));
    // What `wasmtime run` passes: the file name, never its directories.
    let argv0 = args
        .file
        .file_name()
        .map_or_else(|| base.clone(), |f| f.to_string_lossy().into_owned());
    let profile = match &args.policy {
        Some(reference) => Some(Profile::load(reference, Path::new(""))?),
        None => None,
    };
    let grant = profile.as_ref().map(|p| &p.policy.spawn);
    config.engine.max_workers =
        max_workers.unwrap_or_else(|| slots_needed([(args.count, grant)], 0));
    let runtime = Runtime::new(config)?;
    let program = runtime.load(&args.file)?;
    let _observers = observers::start(&runtime, "run", &base, &args.observe, ui.quiet).await?;
    // One worker is run as a program: its output is its own, and it reads
    // corral's stdin. Several are told apart by their prefixes.
    let prefixed = args.prefix || (!args.no_prefix && args.count > 1);
    let stdio = if prefixed {
        Stdio::Console
    } else {
        Stdio::Inherit
    };
    let stdin = if args.count == 1 {
        Stdin::Inherit
    } else {
        Stdin::Empty
    };
    let mounts: Vec<MountSpec> = args.mounts.iter().chain(&args.dirs).cloned().collect();
    let limits = Limits {
        memory: args.memory,
        cpu_time: args.cpu,
        wall_time: args.timeout,
    };
    let names: Vec<String> = if args.count == 1 {
        vec![base]
    } else {
        (1..=args.count).map(|i| format!("{base}-{i}")).collect()
    };
    let fs = Filesystem::from_args(&args.fs, None);
    let run = fs.new_run(Backend::Local)?;
    let specs = names
        .into_iter()
        .map(|name| {
            let mut spec = WorkerSpec {
                name,
                argv0: Some(argv0.clone()),
                args: args.args.clone(),
                env: env.clone(),
                limits: limits.clone(),
                stdio,
                stdin: stdin.clone(),
                run: run.clone(),
                mounts: mounts.clone(),
                policy: Default::default(),
                restart: args.restart.policy(),
                group: None,
            };
            if let Some(profile) = &profile {
                profile.apply_to(&mut spec);
            }
            Planned {
                program: program.clone(),
                spec,
                after: Vec::new(),
            }
        })
        .collect::<Vec<_>>();
    if let (Some(reference), Some(first)) = (&args.policy, specs.first()) {
        check_policy(&first.spec).with_context(|| format!("--policy {reference}"))?;
    }
    let mut signals = Signals::install()?;
    let (code, _, _) = launch(&runtime, ui, specs, None, &mut signals).await;
    fs.save(&run, ui)?;
    Ok(code)
}

pub(super) async fn up(
    mut config: RuntimeConfig,
    ui: Ui,
    path: &Path,
    (fs, backend, observe): (FsArgs, BackendArgs, ObserveArgs),
    max_workers: Option<u32>,
) -> anyhow::Result<u8> {
    let manifest = Manifest::from_file(path)?;
    let fs = Filesystem::from_args(&fs, manifest.filesystem.as_ref());
    let redis = connect_backend(&manifest, backend).await?;
    let default = manifest.backend.as_ref().and_then(|b| b.default);
    let run = fs.new_run(match (&redis, default) {
        (Some(redis), None | Some(Placement::Redis)) => redis.clone(),
        _ => Backend::Local,
    })?;
    manifest
        .declare_objects_with(&run, redis.as_ref())
        .with_context(|| format!("{}: declaring the named objects", path.display()))?;
    let mut programs: HashMap<PathBuf, Program> = HashMap::new();
    let base = path.parent().unwrap_or(Path::new(""));
    let mut profiles: HashMap<String, Profile> = HashMap::new();
    for entry in &manifest.workers {
        if let Some(reference) = &entry.policy {
            let profile = Profile::load(reference, base)
                .with_context(|| format!("{}: worker `{}`", path.display(), entry.name))?;
            profiles.insert(entry.name.clone(), profile);
        }
    }
    let pool_instances = manifest
        .pools
        .iter()
        .map(|p| p.workers.unwrap_or(PoolOptions::default().workers))
        .fold(0u32, |sum, n| {
            sum.saturating_add(u32::try_from(n).unwrap_or(u32::MAX))
        });
    let workers = manifest.workers.iter().map(|entry| {
        let grant = profiles.get(&entry.name).map(|p| &p.policy.spawn);
        (entry.count, grant)
    });
    config.engine.max_workers =
        max_workers.unwrap_or_else(|| slots_needed(workers, pool_instances));
    let runtime = Runtime::new(config)?;
    let mut specs = Vec::new();
    let mut memberships = manifest.supervision();
    // Index range of each entry's instances, for `after`.
    let mut started_at: HashMap<&str, std::ops::Range<usize>> = HashMap::new();
    for entry in &manifest.workers {
        let file = entry.component.get_ref();
        let program = match programs.get(file) {
            Some(p) => p.clone(),
            None => {
                let p = runtime
                    .load(file)
                    .with_context(|| format!("{}: worker `{}`", path.display(), entry.name))?;
                programs.insert(file.clone(), p.clone());
                p
            }
        };
        for name in entry.instance_names() {
            let group = memberships.remove(&name);
            let mut restart = entry.restart_policy();
            if group.is_some() && entry.restart.is_none() {
                restart.when = Restart::OnFailure;
            }
            let mut spec = WorkerSpec {
                name,
                argv0: None,
                args: entry.args.clone(),
                env: entry
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                limits: entry.effective_limits(&manifest.defaults),
                stdio: if entry.prefix {
                    Stdio::Console
                } else {
                    Stdio::Inherit
                },
                stdin: Stdin::Empty,
                run: run.clone(),
                mounts: entry.mounts.clone(),
                policy: Default::default(),
                restart,
                group,
            };
            if let Some(profile) = profiles.get(&entry.name) {
                profile.apply_to(&mut spec);
                check_policy(&spec).with_context(|| {
                    format!("{}: worker `{}`: its policy", path.display(), entry.name)
                })?;
            }
            let after = entry
                .after
                .iter()
                .flat_map(|name| started_at[name.as_str()].clone())
                .collect();
            specs.push(Planned {
                program: program.clone(),
                spec,
                after,
            });
        }
        let count = entry.count as usize;
        started_at.insert(&entry.name, specs.len() - count..specs.len());
    }
    let name = path.file_stem().unwrap_or_default().to_string_lossy();
    let _observers = observers::start(&runtime, "up", &name, &observe, ui.quiet).await?;
    let finished: Finished = tokio::sync::watch::channel(vec![false; specs.len()]).0;
    let pools_by: PoolDeadline = tokio::sync::watch::channel(None).0;
    let mut signals = Signals::install()?;
    let stages = feeds::start(
        &runtime,
        &manifest,
        path,
        &run,
        &mut programs,
        &started_at,
        (&finished, &pools_by),
    )?;
    let (mut code, stopped, cut_short) = launch(
        &runtime,
        ui,
        specs,
        Some((&finished, &pools_by)),
        &mut signals,
    )
    .await;
    let quiet = ui.quiet || ui.json_events;
    let (pools_ok, stopped_late) = feeds::finish(
        stages,
        (stopped, cut_short),
        (&pools_by, ui.shutdown_grace),
        quiet,
        &mut signals,
    )
    .await;
    if let Some(stop) = stopped_late {
        code = stop.exit_code();
    } else if code == 0 && !pools_ok {
        code = 1;
    }
    fs.save(&run, ui)?;
    Ok(code)
}

/// How many workers may be alive at once in a run of `workers` (each
/// `count` copies under a spawn grant, if any) beside `pool_instances`:
/// every worker, and every descendant its grant allows (a grant always has
/// a bound: `max-descendants` defaults to 64). The engine reserves a slot
/// for each up front, which costs start time: a run of one worker needs one.
fn slots_needed<'a>(
    workers: impl IntoIterator<Item = (u32, Option<&'a SpawnPolicy>)>,
    pool_instances: u32,
) -> u32 {
    let mut total = pool_instances;
    for (count, grant) in workers {
        let each = match grant {
            Some(grant) if !grant.components.is_empty() => grant.max_descendants.saturating_add(1),
            _ => 1,
        };
        total = total.saturating_add(count.saturating_mul(each));
    }
    total.max(1)
}

/// Refuses, before anything starts, a policy the engine cannot run: the
/// worker would only fail to start.
fn check_policy(spec: &WorkerSpec) -> anyhow::Result<()> {
    if let Some(stack) = spec.policy.stack {
        EngineOptions::wasm_stack(stack).map_err(|e| anyhow::anyhow!("stack: {e}"))?;
    }
    Ok(())
}

/// Connects to the Redis server named by `--backend` or the manifest's
/// `[backend]` (the command line wins), if any.
async fn connect_backend(
    manifest: &Manifest,
    args: BackendArgs,
) -> anyhow::Result<Option<Backend>> {
    let entry = manifest.backend.clone().unwrap_or_default();
    let Some(url) = args.url.or(entry.url) else {
        return Ok(None);
    };
    let mut config = RedisConfig::new(url);
    if let Some(namespace) = args.namespace.or(entry.namespace) {
        config.namespace = namespace;
    }
    if let Some(lease) = entry.lease {
        config.lease = lease;
    }
    let backend = RedisBackend::connect(config).await?;
    Ok(Some(Backend::Redis(backend)))
}

/// Where the run's shared tree comes from and goes, merged from the command
/// line (which wins) and the manifest's `[filesystem]` table.
struct Filesystem {
    from: Option<PathBuf>,
    save: Option<PathBuf>,
    limits: FsLimits,
}

impl Filesystem {
    fn from_args(args: &FsArgs, manifest: Option<&FilesystemEntry>) -> Filesystem {
        let from_manifest = |f: fn(&FilesystemEntry) -> Option<PathBuf>| manifest.and_then(f);
        Filesystem {
            from: args
                .vfs_from
                .clone()
                .or_else(|| from_manifest(|m| m.from.clone())),
            save: args
                .vfs_save
                .clone()
                .or_else(|| from_manifest(|m| m.save.clone())),
            limits: FsLimits {
                max_bytes: args
                    .vfs_max_bytes
                    .or(manifest.and_then(|m| m.max_bytes))
                    .unwrap_or(FsLimits::DEFAULT.max_bytes),
                max_inodes: args
                    .vfs_max_files
                    .or(manifest.and_then(|m| m.max_files))
                    .unwrap_or(FsLimits::DEFAULT.max_inodes),
            },
        }
    }

    /// A run whose tree has these limits, seeded if asked, and whose
    /// objects live on `backend`.
    fn new_run(&self, backend: Backend) -> anyhow::Result<Run> {
        let run = Run::with_options(self.limits, backend);
        if let Some(dir) = &self.from {
            run.fs()
                .seed_from(dir)
                .with_context(|| format!("cannot seed the shared tree from {}", dir.display()))?;
        }
        Ok(run)
    }

    /// Saves the tree if asked; runs after every worker ended, however.
    fn save(&self, run: &Run, ui: Ui) -> anyhow::Result<()> {
        let Some(dir) = &self.save else { return Ok(()) };
        run.fs()
            .save_to(dir)
            .with_context(|| format!("cannot save the shared tree to {}", dir.display()))?;
        if !ui.quiet {
            let usage = run.fs().usage();
            eprintln!(
                "corral: saved the shared tree to {} ({} entries, {})",
                dir.display(),
                usage.inodes,
                bytesize::ByteSize(usage.bytes).display().iec()
            );
        }
        Ok(())
    }
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map_or_else(|| "worker".into(), |s| s.to_string_lossy().into_owned())
}

/// One worker to start, and the workers (by index) it starts after.
struct Planned {
    program: Program,
    spec: WorkerSpec,
    after: Vec<usize>,
}

/// Spawns every worker (each as soon as the workers it comes `after` have
/// ended), waits for all of them (terminating them on SIGINT or SIGTERM, or
/// when one could not start), prints the summary and returns the process
/// exit code, the signal that stopped the run, if one did, and whether a
/// worker that could not start cut the run short. Marks each worker in
/// `finished` as it ends; on a signal, tells the pools when they must be
/// done by (the grace period's end, or now).
async fn launch(
    runtime: &Runtime,
    ui: Ui,
    plan: Vec<Planned>,
    feeds: Option<(&Finished, &PoolDeadline)>,
    signals: &mut Signals,
) -> (u8, Option<Stop>, bool) {
    let names: Vec<String> = plan.iter().map(|p| p.spec.name.clone()).collect();
    let mut waiting: Vec<Option<Planned>> = plan.into_iter().map(Some).collect();
    let mut workers: Vec<Option<Worker>> = vec![None; waiting.len()];
    let mut reports: Vec<Option<WorkerReport>> = vec![None; waiting.len()];
    let mut joins = FuturesUnordered::new();
    let mut stopped: Option<Stop> = None;
    // Running while workers asked to stop have time to finish up.
    let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut terminated = false;
    // A worker that could not start leaves the workers that read from it
    // waiting for input that never comes: the run ends there.
    let mut failed_start: Option<usize> = None;
    loop {
        if stopped.is_none() && failed_start.is_none() {
            for i in 0..waiting.len() {
                let ready = waiting[i]
                    .as_ref()
                    .is_some_and(|p| p.after.iter().all(|&d| reports[d].is_some()));
                if ready && let Some(p) = waiting[i].take() {
                    let worker = runtime.spawn(&p.program, p.spec);
                    workers[i] = Some(worker.clone());
                    joins.push(async move { (i, worker.wait_report().await) });
                }
            }
        }
        tokio::select! {
            joined = joins.next() => match joined {
                Some((i, report)) => {
                    // A member its group stopped before it ran did not fail
                    // to start: the group is over.
                    let stopped_by_group = report.status.stopped_by_group();
                    let cannot_start = !stopped_by_group
                        && (matches!(report.status, ExitStatus::FailedToStart { .. })
                            || workers[i].as_ref().is_some_and(|w| !w.ran_main()));
                    reports[i] = Some(report);
                    if let Some((finished, _)) = feeds {
                        finished.send_modify(|ended| ended[i] = true);
                    }
                    if cannot_start && stopped.is_none() && failed_start.is_none() {
                        failed_start = Some(i);
                        let alive: Vec<&Worker> =
                            workers.iter().flatten().filter(|w| w.is_alive()).collect();
                        if !alive.is_empty() {
                            eprintln!(
                                "corral: {} could not start; terminating {} workers",
                                names[i],
                                alive.len()
                            );
                        }
                        alive.iter().for_each(|w| w.terminate());
                    }
                }
                None => break,
            },
            stop = signals.recv(), if !terminated => {
                let alive: Vec<&Worker> = workers.iter().flatten().filter(|w| w.is_alive()).collect();
                let first = stopped.is_none();
                stopped.get_or_insert(stop);
                if first && !ui.shutdown_grace.is_zero() {
                    runtime.emit(Event::ShutdownRequested {
                        signal: stop.signal().into(),
                        reason: stop.describe().into(),
                        grace_ms: u64::try_from(ui.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
                        workers: alive.len(),
                    });
                    alive.iter().for_each(|w| w.request_shutdown());
                    grace = Some(Box::pin(tokio::time::sleep(ui.shutdown_grace)));
                    if let Some((_, pools_by)) = feeds {
                        pools_by.send_replace(Some(std::time::Instant::now() + ui.shutdown_grace));
                    }
                } else {
                    runtime.emit(Event::ShutdownTerminating {
                        reason: stop.describe().into(),
                        workers: alive.len(),
                    });
                    alive.iter().for_each(|w| w.terminate());
                    (grace, terminated) = (None, true);
                    if let Some((_, pools_by)) = feeds {
                        pools_by.send_replace(Some(std::time::Instant::now()));
                    }
                }
            }
            () = async { grace.as_mut().expect("guarded").await }, if grace.is_some() => {
                let alive: Vec<&Worker> = workers.iter().flatten().filter(|w| w.is_alive()).collect();
                if !alive.is_empty() {
                    runtime.emit(Event::ShutdownTerminating {
                        reason: "grace period over".into(),
                        workers: alive.len(),
                    });
                }
                alive.iter().for_each(|w| w.terminate());
                (grace, terminated) = (None, true);
            }
        }
    }
    let reports: Vec<WorkerReport> = reports
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| WorkerReport {
                status: ExitStatus::FailedToStart {
                    reason: match failed_start {
                        Some(i) if stopped.is_none() => {
                            format!("not started: {} could not start", names[i])
                        }
                        _ => "not started: the run was interrupted".into(),
                    },
                },
                duration: std::time::Duration::ZERO,
                cpu_time: std::time::Duration::ZERO,
                peak_memory: 0,
                restarts: 0,
            })
        })
        .collect();
    if !ui.json_events {
        // The workers' own last words come before the report on them.
        let flushed = tokio::task::spawn_blocking(|| crate::output::flush_console(SUMMARY_WAIT));
        let _ = flushed.await;
        print_summary(ui, &names, &reports);
    }
    if let Some(stop) = stopped {
        return (stop.exit_code(), Some(stop), false);
    }
    (
        run_exit_code(&reports, failed_start),
        None,
        failed_start.is_some(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(max_descendants: u32) -> SpawnPolicy {
        SpawnPolicy {
            components: vec!["child".into()],
            max_descendants,
            ..SpawnPolicy::default()
        }
    }

    #[test]
    fn the_engine_is_sized_to_the_run() {
        assert_eq!(slots_needed([(1, None)], 0), 1);
        assert_eq!(slots_needed([(10, None)], 4), 14);
        let bounded = grant(9);
        assert_eq!(slots_needed([(2, Some(&bounded)), (3, None)], 0), 23);
        let by_default = SpawnPolicy {
            components: vec!["child".into()],
            ..SpawnPolicy::default()
        };
        assert_eq!(
            slots_needed([(1, Some(&by_default))], 0),
            SpawnPolicy::DEFAULT_MAX_DESCENDANTS + 1
        );
        // A grant of no component is no grant.
        assert_eq!(slots_needed([(1, Some(&SpawnPolicy::default()))], 0), 1);
    }
}
