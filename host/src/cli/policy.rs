//! `corral policy`: check a policy file, and test what a policy really allows.

use std::path::Path;

use crate::policy::{PolicyFile, Profile};

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
                or_none(p.spawn.max_children.map(|n| n.to_string())),
                or_none(p.spawn.max_descendants.map(|n| n.to_string()))
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
