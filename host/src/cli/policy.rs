//! `corral policy`: check a policy file, and test what a policy really allows.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::probe::{self, Check, Observation, Outcome, Progress};
use crate::ipc::{PipeConfig, QueueConfig};
use crate::policy::{ObjectKind, PolicyFile, Profile};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::vfs::{Limits as FsLimits, MountSource};

/// `corral policy test`: run the probe, print each row as its check ends
/// (on a terminal, with what is still running and its deadline), exit 1 on
/// any mismatch.
pub(super) async fn test(
    mut config: RuntimeConfig,
    reference: &str,
    expect: Option<&Path>,
    worker: Option<&Path>,
    json: bool,
) -> anyhow::Result<u8> {
    let profile = Profile::load(reference, Path::new(""))?;
    let mut checks = probe::plan(&profile);
    if let Some(path) = expect {
        apply_expectations(&mut checks, path)?;
    }
    // Denials are the point here: they go in the table, not on stderr.
    config.events = None;
    config.engine.max_workers = config.engine.max_workers.min(probe::slots_needed(&checks));
    let runtime = Runtime::new(config)?;
    let program = match worker {
        Some(path) => runtime.load(path)?,
        None => runtime.load_bytes("bundled policy probe", probe::BUNDLED_PROBE.to_vec())?,
    };
    let table = Table::new(&checks);
    if !json {
        println!("{}", describe(&profile));
        table.header();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let probing = async {
        let results = probe::run(&runtime, &program, &profile, checks, &tx).await;
        drop(tx);
        results
    };
    let (results, ()) = tokio::join!(probing, show_progress(rx, (!json).then_some(&table)));
    let mismatches = results.iter().filter(|r| !r.matches()).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        table.footer(&results);
    }
    Ok(if mismatches > 0 { 1 } else { 0 })
}

/// Prints each finished check as a row of `table` (none for JSON output),
/// and on a terminal keeps a line on stderr with the checks still running,
/// how long each has run and when it ends.
async fn show_progress(
    mut progress: tokio::sync::mpsc::UnboundedReceiver<Progress>,
    table: Option<&Table>,
) {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut running: Vec<(Check, Option<Duration>, Instant, Duration)> = Vec::new();
    let mut refresh = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            event = progress.recv() => match event {
                Some(Progress::Started { check, limit, give_up }) => {
                    running.push((check, limit, Instant::now(), give_up));
                }
                Some(Progress::Finished(observation)) => {
                    running.retain(|(c, ..)| c.check != observation.check.check);
                    if let Some(table) = table {
                        bar.suspend(|| table.row(&observation));
                    }
                }
                None => break,
            },
            _ = refresh.tick() => {}
        }
        bar.set_message(running_line(&running));
    }
    bar.finish_and_clear();
}

/// The checks still running, longest-waiting first: what each waits for,
/// for how long so far, and its deadline.
fn running_line(running: &[(Check, Option<Duration>, Instant, Duration)]) -> String {
    let secs = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    running
        .iter()
        .map(|(check, limit, since, give_up)| {
            let elapsed = since.elapsed();
            let until = match limit {
                Some(limit) => format!("limit {}", humantime::format_duration(*limit)),
                None => format!("gives up at {}", secs(*give_up)),
            };
            format!("{}: {} ({until})", check.capability, secs(elapsed))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    expect: BTreeMap<String, Outcome>,
}

/// Overrides expectations (and adds checks) from an `[expect]` file.
fn apply_expectations(checks: &mut Vec<Check>, path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: Expectations = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    for (key, expected) in file.expect {
        match checks.iter_mut().find(|c| c.check == key) {
            Some(check) => check.expected = expected,
            None => checks.push(Check {
                capability: format!("{key} (from {})", path.display()),
                fatal: probe::needs_own_probe(&key),
                check: key,
                expected,
            }),
        }
    }
    Ok(())
}

/// The results table, printed a row at a time: its column widths come from
/// the checks, known before any runs.
struct Table {
    color: bool,
    capability_width: usize,
    check_width: usize,
}

impl Table {
    fn new(checks: &[Check]) -> Table {
        let width = |f: fn(&Check) -> usize| checks.iter().map(f).max().unwrap_or(0);
        Table {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            capability_width: width(|c| c.capability.chars().count()).max(10),
            check_width: width(|c| c.check.chars().count()).max(5),
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn header(&self) {
        let (cw, kw) = (self.capability_width, self.check_width);
        println!(
            "   {:cw$}  {:kw$}  {:8}  {:8}  detail",
            "capability", "check", "expected", "observed"
        );
    }

    fn row(&self, r: &Observation) {
        let (cw, kw) = (self.capability_width, self.check_width);
        let mark = if r.matches() {
            self.paint("✓", "32")
        } else {
            self.paint("✗", "31;1")
        };
        let observed = format!("{:8}", r.observed.to_string());
        let observed = if r.matches() {
            observed
        } else {
            self.paint(&observed, "31;1")
        };
        let detail: String = r.detail.chars().take(60).collect();
        println!(
            "{mark}  {:cw$}  {:kw$}  {:8}  {observed}  {detail}",
            r.check.capability,
            r.check.check,
            r.check.expected.to_string()
        );
    }

    fn footer(&self, results: &[Observation]) {
        let bad = results.iter().filter(|r| !r.matches()).count();
        println!();
        if bad == 0 {
            println!("{} checks, all as expected", results.len());
        } else {
            println!(
                "{} checks, {}",
                results.len(),
                self.paint(&format!("{bad} not as expected"), "31;1")
            );
        }
    }
}

pub(super) fn check(file: &Path) -> anyhow::Result<u8> {
    let policies = PolicyFile::from_file(file)?;
    println!(
        "{}: {} profiles, all valid",
        file.display(),
        policies.profile_names().len()
    );
    for name in policies.profile_names() {
        let profile = policies.profile(Some(name))?;
        println!();
        print!("{}", describe(&profile));
    }
    Ok(0)
}

/// What a profile grants, one line per knob, in plain words.
pub(super) fn describe(profile: &Profile) -> String {
    let mut out = format!("[{}]\n", profile.name);
    let mut line = |key: &str, value: String| out.push_str(&format!("  {key:<10} {value}\n"));
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "no limit".into());
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    let time = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let p = &profile.policy;
    line("memory", or_none(profile.limits.memory.map(size)));
    line("cpu", or_none(profile.limits.cpu_time.map(time)));
    line("timeout", or_none(profile.limits.wall_time.map(time)));
    if let Some(fuel) = p.fuel {
        line("fuel", fuel.to_string());
    }
    if let Some(stack) = p.stack {
        line("stack", size(stack));
    }
    line("env", list(profile.env.clone()));
    line(
        "mounts",
        list(
            profile
                .mounts
                .iter()
                .map(|m| {
                    format!(
                        "{} ({})",
                        m.guest_path,
                        if m.read_only { "ro" } else { "rw" }
                    )
                })
                .collect(),
        ),
    );
    let rules = |r: &[crate::policy::AddrRule]| list(r.iter().map(ToString::to_string).collect());
    line("connect", rules(&p.network.connect));
    line("bind", rules(&p.network.bind));
    line("udp", rules(&p.network.udp));
    line(
        "lookup",
        if p.network.lookup {
            "allowed"
        } else {
            "denied"
        }
        .into(),
    );
    let grants = p.ipc.as_ref().map(|g| {
        g.rules
            .iter()
            .map(|r| {
                let ops: Vec<&str> = r
                    .kind
                    .ops()
                    .iter()
                    .filter(|o| r.ops.contains(**o))
                    .map(|o| o.name())
                    .collect();
                format!("{} {} [{}]", r.kind.name(), r.pattern, ops.join(" "))
            })
            .collect::<Vec<_>>()
    });
    line(
        "ipc",
        grants.map_or_else(|| "every object of the run".into(), list),
    );
    line(
        "spawn",
        if p.spawn.components.is_empty() {
            "denied".into()
        } else {
            format!(
                "{} (children {}, descendants {})",
                p.spawn.components.join(", "),
                p.spawn.max_children,
                p.spawn.max_descendants
            )
        },
    );
    let counts = p.counts.ledger_limits();
    let default_or_set = |set: Option<u32>| if set.is_some() { "" } else { ", the default" };
    line(
        "handles",
        format!(
            "{} open files and streams (max-handles{})",
            counts.handles,
            default_or_set(p.counts.handles)
        ),
    );
    line(
        "host fds",
        format!(
            "{} host descriptors (max-host-fds{})",
            counts.host_fds,
            default_or_set(p.counts.host_fds)
        ),
    );
    if profile
        .mounts
        .iter()
        .any(|m| matches!(m.source, MountSource::Scratch))
    {
        line(
            "scratch",
            match profile.limits.memory {
                Some(cap) => format!("paid from the memory cap ({} with memory)", size(cap)),
                None => format!("{} (no memory cap)", size(FsLimits::DEFAULT.max_bytes)),
            },
        );
    }
    if profile
        .mounts
        .iter()
        .any(|m| matches!(m.source, MountSource::Shared { .. }))
    {
        line(
            "shared",
            format!(
                "the run's quota ({} unless --vfs-max-bytes or the manifest sets it)",
                size(FsLimits::DEFAULT.max_bytes)
            ),
        );
    }
    let may_use = |kind: ObjectKind| {
        p.ipc
            .as_ref()
            .is_none_or(|g| g.rules.iter().any(|r| r.kind == kind))
    };
    if may_use(ObjectKind::Queue) || may_use(ObjectKind::Pipe) {
        line(
            "ipc bytes",
            format!(
                "queues {}, pipes {} per direction (unless a manifest's max-bytes says)",
                size(QueueConfig::default().max_bytes as u64),
                size(PipeConfig::default().max_bytes as u64)
            ),
        );
    }
    line("stdout", or_none(p.stdout_limit.map(size)));
    line("stderr", or_none(p.stderr_limit.map(size)));
    if let Some(det) = p.deterministic {
        line(
            "replay",
            format!(
                "deterministic: seed {}, clock from {}",
                det.seed,
                humantime::format_rfc3339(det.start)
            ),
        );
    }
    out
}
