//! `corral policy test`: run a probe worker under a profile, try every
//! capability the profile names (and a few it does not), and compare what
//! happened with what was expected. Part of the CLI, not of `policy`: it
//! runs workers, and the policy module must stay below the runtime.

mod plan;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use plan::{needs_own_probe, plan, slots_needed};

use crate::ipc::{PipeConfig, QueueConfig};
use crate::output::Stdio;
use crate::policy::Profile;
use crate::run::Run;
use crate::runtime::{Program, Runtime};
use crate::status::ExitStatus;
use crate::worker::WorkerSpec;

/// The probe guest, built for wasm32-wasip2 by build.rs.
pub const BUNDLED_PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy-probe.wasm"));

/// What happened, or should happen, when the probe tried something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The host let it through.
    Allowed,
    /// The policy refused it (the worker got an error and went on).
    Denied,
    /// A limit ended the worker.
    Killed,
    /// The probe could not tell (an unrelated failure).
    Error,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Killed => "killed",
            Outcome::Error => "error",
        })
    }
}

/// One capability to try: the probe's argument and what should happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The probe argument, e.g. `connect:127.0.0.1:8080`; also the key of
    /// an expectations file.
    pub check: String,
    /// What it tests, in words.
    pub capability: String,
    /// What should happen.
    pub expected: Outcome,
    /// Whether it needs a probe of its own: it ends the probe (a limit), or
    /// uses up a count (handles, children) that other checks would need.
    pub fatal: bool,
}

/// A check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// The check.
    #[serde(flatten)]
    pub check: Check,
    /// What happened.
    pub observed: Outcome,
    /// The probe's or the host's words on it.
    pub detail: String,
}

impl Observation {
    /// Whether it went as expected.
    pub fn matches(&self) -> bool {
        self.observed == self.check.expected
    }
}

/// Declares in `run` every object and component the checks name, so that
/// a refusal can only come from the policy.
fn prepare(run: &Run, checks: &[Check], probe: &Program) {
    for c in checks {
        let parts: Vec<&str> = c.check.splitn(4, ':').collect();
        match parts.as_slice() {
            ["ipc", kind, name, _] => {
                let objects = run.objects();
                // A name declared twice is fine: the first declaration stands.
                let _ = match *kind {
                    "queue" => objects
                        .declare_queue(name, QueueConfig::default())
                        .map(drop),
                    "pipe" => objects.declare_pipe(name, PipeConfig::default()).map(drop),
                    "lock" => objects.declare_lock(name, false).map(drop),
                    "semaphore" => objects.declare_semaphore(name, 1, 1).map(drop),
                    "event" => objects.declare_event(name).map(drop),
                    "barrier" => objects.declare_barrier(name, 1).map(drop),
                    "condition" => {
                        let lock = format!("{name}-lock");
                        let _ = objects.declare_lock(&lock, false);
                        objects.declare_condition(name, &lock).map(drop)
                    }
                    _ => Ok(()),
                };
            }
            ["spawn" | "children" | "descendants", component, ..] => {
                run.register_component(*component, probe.clone())
            }
            _ => {}
        }
    }
}

#[derive(serde::Deserialize)]
struct ProbeLine {
    check: String,
    observed: Outcome,
    detail: String,
}

/// How long a probe may take before it is given up on: two minutes, or the
/// profile's wall-time limit and a minute more, so that a long limit is
/// still seen to end the probe.
fn give_up_after(profile: &Profile) -> Duration {
    let floor = Duration::from_secs(120);
    profile
        .limits
        .wall_time
        .map_or(floor, |limit| floor.max(limit + Duration::from_secs(60)))
}

/// What [`run`] reports while it runs, so a caller can show each result as
/// it comes and what is still being waited for.
#[derive(Debug)]
pub enum Progress {
    /// A probe has started on `check`; it is given up on after `give_up`.
    Started {
        /// The check being tried.
        check: Check,
        /// The limit expected to end the probe (wall time for a sleep, CPU
        /// time for a spin), if that is what the check waits for.
        limit: Option<Duration>,
        /// When the probe is given up on, from now.
        give_up: Duration,
    },
    /// A check's result.
    Finished(Observation),
}

/// How often a running probe's output is read for finished checks.
const POLL: Duration = Duration::from_millis(100);

/// Runs `checks` with the probe `program` under `profile`: the non-fatal
/// ones in one worker, each fatal one in a worker of its own, all at once
/// so that the whole run takes as long as its longest limit. Tells
/// `progress` of each check as it starts and ends; returns the results in
/// the order of `checks`.
pub async fn run(
    runtime: &Runtime,
    program: &Program,
    profile: &Profile,
    checks: Vec<Check>,
    progress: &tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Vec<Observation> {
    let probe = Probe {
        runtime,
        program,
        profile,
        progress,
    };
    let run = Run::new();
    prepare(&run, &checks, program);
    let order: Vec<String> = checks.iter().map(|c| c.check.clone()).collect();
    let (fatal, safe): (Vec<Check>, Vec<Check>) = checks.into_iter().partition(|c| c.fatal);
    let mut batches: Vec<Vec<Check>> = vec![safe];
    batches.extend(fatal.into_iter().map(|c| vec![c]));
    let mut results: Vec<Observation> = futures::future::join_all(
        batches
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(|batch| run_batch(probe, &run, batch)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    results.sort_by_key(|r| order.iter().position(|c| *c == r.check.check));
    results
}

/// The limit a fatal check waits for, to show while it runs.
fn awaited_limit(check: &Check, profile: &Profile) -> Option<Duration> {
    if check.check.starts_with("sleep:") {
        profile.limits.wall_time
    } else if check.check.starts_with("cpu:") {
        profile.limits.cpu_time
    } else {
        None
    }
}

/// What every probe worker of one `policy test` run shares.
#[derive(Clone, Copy)]
struct Probe<'a> {
    runtime: &'a Runtime,
    program: &'a Program,
    profile: &'a Profile,
    progress: &'a tokio::sync::mpsc::UnboundedSender<Progress>,
}

/// Runs one probe worker on `batch`, reporting each check as its line
/// appears in the probe's output.
async fn run_batch(probe: Probe<'_>, run: &Run, batch: Vec<Check>) -> Vec<Observation> {
    let Probe {
        runtime,
        program,
        profile,
        progress,
    } = probe;
    let mut spec = WorkerSpec::new("policy-probe")
        .args(batch.iter().map(|c| c.check.clone()))
        .stdio(Stdio::Capture)
        .run(run);
    profile.apply_to(&mut spec);
    let give_up = give_up_after(profile);
    let started = tokio::time::Instant::now();
    let tell_started = |check: &Check| {
        let _ = progress.send(Progress::Started {
            check: check.clone(),
            limit: awaited_limit(check, profile),
            give_up: give_up.saturating_sub(started.elapsed()),
        });
    };
    let worker = runtime.spawn(program, spec);
    let mut pending = batch.into_iter().peekable();
    let mut results = Vec::new();
    let mut seen: BTreeMap<String, ProbeLine> = BTreeMap::new();
    let mut read = 0;
    if let Some(first) = pending.peek() {
        tell_started(first);
    }
    let join = worker.join();
    tokio::pin!(join);
    let deadline = tokio::time::sleep(give_up);
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(POLL);
    let status = loop {
        let ended = tokio::select! {
            status = &mut join => Some(Ok(status)),
            () = &mut deadline => Some(Err(())),
            _ = poll.tick() => None,
        };
        let out = worker.stdout();
        let complete = out.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete > read {
            seen.extend(
                String::from_utf8_lossy(&out[read..complete])
                    .lines()
                    .filter_map(|l| serde_json::from_str::<ProbeLine>(l).ok())
                    .map(|l| (l.check.clone(), l)),
            );
            read = complete;
        }
        // The probe tries its checks in order: each line ends one.
        while let Some(line) = pending.peek().and_then(|c| seen.remove(&c.check)) {
            let check = pending.next().expect("peeked");
            let observation = Observation {
                check,
                observed: line.observed,
                detail: line.detail,
            };
            let _ = progress.send(Progress::Finished(observation.clone()));
            results.push(observation);
            if let Some(next) = pending.peek() {
                tell_started(next);
            }
        }
        if let Some(ended) = ended {
            break ended;
        }
    };
    for check in pending {
        let (observed, detail) = match &status {
            Ok(ExitStatus::Killed { reason }) => (Outcome::Killed, reason.to_string()),
            Ok(status) => (
                Outcome::Error,
                format!("the probe ended first: {}", status.summary()),
            ),
            Err(()) => (
                Outcome::Error,
                format!(
                    "the probe did not finish within {}",
                    humantime::format_duration(give_up)
                ),
            ),
        };
        let observation = Observation {
            check,
            observed,
            detail,
        };
        let _ = progress.send(Progress::Finished(observation.clone()));
        results.push(observation);
    }
    if status.is_err() {
        worker.terminate();
    }
    results
}
