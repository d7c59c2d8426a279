//! `corral policy`: check a policy file, and test what a policy really allows.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;

use super::probe::{self, Check, Observation, Outcome};
use crate::policy::{PolicyFile, Profile};
use crate::runtime::{Runtime, RuntimeConfig};

/// `corral policy test`: run the probe, print the table, exit 1 on any
/// mismatch.
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
    let runtime = Runtime::new(config)?;
    let program = match worker {
        Some(path) => runtime.load(path)?,
        None => runtime.load_bytes("bundled policy probe", probe::BUNDLED_PROBE.to_vec())?,
    };
    let results = probe::run(&runtime, &program, &profile, checks).await;
    let mismatches = results.iter().filter(|r| !r.matches()).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_table(&profile.name, &results);
    }
    Ok(if mismatches > 0 { 1 } else { 0 })
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
                fatal: key.starts_with("cpu:") || key.starts_with("sleep:"),
                check: key,
                expected,
            }),
        }
    }
    Ok(())
}

fn print_table(profile: &str, results: &[Observation]) {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |text: &str, code: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let width = |f: fn(&Observation) -> usize| results.iter().map(f).max().unwrap_or(0);
    let (cw, kw) = (
        width(|r| r.check.capability.chars().count()).max(10),
        width(|r| r.check.check.chars().count()).max(5),
    );
    println!("policy profile `{profile}`\n");
    println!(
        "   {:cw$}  {:kw$}  {:8}  {:8}  detail",
        "capability", "check", "expected", "observed"
    );
    for r in results {
        let mark = if r.matches() {
            paint("✓", "32")
        } else {
            paint("✗", "31;1")
        };
        let observed = format!("{:8}", r.observed.to_string());
        let observed = if r.matches() {
            observed
        } else {
            paint(&observed, "31;1")
        };
        let detail: String = r.detail.chars().take(60).collect();
        println!(
            "{mark}  {:cw$}  {:kw$}  {:8}  {observed}  {detail}",
            r.check.capability,
            r.check.check,
            r.check.expected.to_string()
        );
    }
    let bad = results.iter().filter(|r| !r.matches()).count();
    println!();
    if bad == 0 {
        println!("{} checks, all as expected", results.len());
    } else {
        println!(
            "{} checks, {}",
            results.len(),
            paint(&format!("{bad} not as expected"), "31;1")
        );
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
