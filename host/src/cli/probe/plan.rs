//! The checks of `corral policy test`: what to try, and what should happen,
//! for each capability and limit a profile sets. Reads profiles only; runs
//! nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{Check, Outcome};
use crate::policy::{AddrRule, ObjectKind, Profile};
use crate::vfs::MountSource;

fn check(check: String, capability: String, allowed: bool) -> Check {
    Check {
        check,
        capability,
        expected: if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        },
        fatal: false,
    }
}

/// An address of `rule` that is safe to try from a test: loopback only
/// (a try that the policy lets through really connects).
fn loopback_sample(rule: &AddrRule) -> Option<SocketAddr> {
    let ip = match &rule.net {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(net) if net.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)) => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        Some(net) if net.addr().is_loopback() => net.addr(),
        Some(_) => return None,
    };
    Some(SocketAddr::new(ip, *rule.ports.start()))
}

/// A loopback address no rule covers, to show a refusal.
fn uncovered(rules: &[AddrRule]) -> Option<SocketAddr> {
    (1..=u16::MAX)
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .find(|addr| !rules.iter().any(|r| r.matches(*addr)))
}

/// A concrete name that the name pattern matches.
fn sample_name(pattern: &str) -> String {
    pattern.replace('*', "probe").replace('?', "x")
}

/// The checks that show what `profile` grants: each mount read and written,
/// an escape, its environment and one variable it does not list, each
/// network rule on loopback and an address outside them, each IPC grant per
/// operation and an object it does not grant, spawning, and each limit.
pub fn plan(profile: &Profile) -> Vec<Check> {
    let p = &profile.policy;
    let mut checks = Vec::new();
    for m in &profile.mounts {
        let at = &m.guest_path;
        checks.push(check(
            format!("fs-read:{at}"),
            format!("read mount {at}"),
            true,
        ));
        checks.push(check(
            format!("fs-write:{at}"),
            format!("write mount {at}"),
            !m.read_only,
        ));
    }
    if !profile.mounts.iter().any(|m| m.guest_path == "/") {
        checks.push(check(
            "fs-read:/".into(),
            "read outside every mount".into(),
            false,
        ));
    }
    checks.push(check(
        "fs-read:/../..".into(),
        "escape a mount with ..".into(),
        false,
    ));

    for entry in &profile.env {
        let (name, visible) = match entry.split_once('=') {
            Some((k, _)) => (k.to_string(), true),
            None => (entry.clone(), std::env::var_os(entry).is_some()),
        };
        checks.push(check(
            format!("env:{name}"),
            format!("read env {name}"),
            visible,
        ));
    }
    for name in ["PATH", "HOME"] {
        if !profile
            .env
            .iter()
            .any(|e| e == name || e.starts_with(&format!("{name}=")))
        {
            checks.push(check(
                format!("env:{name}"),
                format!("read host env {name}"),
                false,
            ));
        }
    }

    let net = &p.network;
    for (kind, rules) in [
        ("connect", &net.connect),
        ("bind", &net.bind),
        ("udp", &net.udp),
    ] {
        for rule in rules.iter() {
            if let Some(addr) = loopback_sample(rule) {
                checks.push(check(
                    format!("{kind}:{addr}"),
                    format!("{kind} {addr} ({rule})"),
                    true,
                ));
            }
        }
        if let Some(addr) = uncovered(rules) {
            checks.push(check(
                format!("{kind}:{addr}"),
                format!("{kind} {addr} (no rule)"),
                false,
            ));
        }
    }
    checks.push(check(
        "lookup:localhost".into(),
        "name lookup".into(),
        net.lookup,
    ));

    if let Some(grants) = &p.ipc {
        for rule in &grants.rules {
            let name = sample_name(&rule.pattern);
            let granted = grants.ops_for(rule.kind, &name);
            for op in rule.kind.ops() {
                checks.push(check(
                    format!("ipc:{}:{name}:{}", rule.kind.name(), op.name()),
                    format!("{} {} `{name}`", op.name(), rule.kind.name()),
                    granted.contains(*op),
                ));
            }
        }
        checks.push(check(
            format!("ipc:queue:{UNGRANTED}:open"),
            "open a queue no rule grants".into(),
            !grants.ops_for(ObjectKind::Queue, UNGRANTED).is_empty(),
        ));
    }

    for component in p.spawn.components.iter().filter(|c| *c != "*") {
        checks.push(check(
            format!("spawn:{component}"),
            format!("spawn `{component}`"),
            true,
        ));
    }
    let anything = p.spawn.components.iter().any(|c| c == "*");
    checks.push(check(
        format!("spawn:{UNLISTED}"),
        "spawn an unlisted component".into(),
        anything,
    ));

    counted_limits(profile, &mut checks);

    if let Some(cap) = profile.limits.memory {
        let over = cap + (1 << 20);
        checks.push(check(
            format!("memory:{over}"),
            format!("allocate past the {} cap", size(cap)),
            false,
        ));
    }
    if let Some(budget) = profile.limits.cpu_time {
        // The probe spins for wall time, and on a loaded host it gets only a
        // share of a core: spin long enough that even a small share passes
        // the budget. A host that enforces it kills the probe at the budget.
        checks.push(Check {
            check: format!("cpu:{}", (budget * 20 + Duration::from_secs(1)).as_millis()),
            capability: format!(
                "spin past the {} CPU budget",
                humantime::format_duration(budget)
            ),
            expected: Outcome::Killed,
            fatal: true,
        });
    }
    if let Some(limit) = profile.limits.wall_time {
        checks.push(Check {
            check: format!("sleep:{}", (limit * 2).as_millis()),
            capability: format!(
                "outlive the {} wall-time limit",
                humantime::format_duration(limit)
            ),
            expected: Outcome::Killed,
            fatal: true,
        });
    }
    checks
}

/// Memory one idle probe child holds, with room to spare: a child keeps
/// its linear memory out of its parent's cap, so a cap below this many per
/// child refuses children before `max-children` does.
const PROBE_CHILD_BYTES: u64 = 2 << 20;

/// The ledger's and the family's counted limits, each tried one past the
/// limit where a mount or a grant lets the probe reach it. Each needs a
/// probe of its own: it uses up what other checks would need.
fn counted_limits(profile: &Profile, checks: &mut Vec<Check>) {
    let p = &profile.policy;
    let counts = p.counts.ledger_limits();
    let writable = |host: bool| {
        profile
            .mounts
            .iter()
            .find(|m| !m.read_only && matches!(m.source, MountSource::Host { .. }) == host)
    };
    let mut limit = |check: String, capability: String| {
        checks.push(Check {
            check,
            capability,
            expected: Outcome::Denied,
            fatal: true,
        })
    };
    // A host mount's files cost a host descriptor and a handle each: a host
    // mount shows `max-host-fds` only where it is the lower of the two.
    if let Some(m) = writable(false) {
        limit(
            format!("handles:{}:{}", m.guest_path, counts.handles),
            format!("hold over {} open files (max-handles)", counts.handles),
        );
    }
    if let Some(m) = writable(true).filter(|_| counts.host_fds < counts.handles) {
        limit(
            format!("host-fds:{}:{}", m.guest_path, counts.host_fds),
            format!(
                "hold over {} host descriptors (max-host-fds)",
                counts.host_fds
            ),
        );
    }
    if let (Some(cap), Some(m)) = (
        profile.limits.memory,
        profile
            .mounts
            .iter()
            .find(|m| !m.read_only && matches!(m.source, MountSource::Scratch)),
    ) {
        limit(
            format!("scratch-bytes:{}:{cap}", m.guest_path),
            format!("grow a scratch file past the {} cap", size(cap)),
        );
    }
    let spawn = &p.spawn;
    let Some(component) = spawn.components.first() else {
        return;
    };
    let component = if component == "*" {
        UNLISTED
    } else {
        component
    };
    let children_fit = profile
        .limits
        .memory
        .is_none_or(|cap| cap / PROBE_CHILD_BYTES > u64::from(spawn.max_children) + 1);
    if children_fit {
        limit(
            format!("children:{component}:{}", spawn.max_children),
            format!(
                "keep over {} children alive (max-children)",
                spawn.max_children
            ),
        );
    }
    limit(
        format!("descendants:{component}:{}", spawn.max_descendants),
        format!(
            "spawn over {} descendants (max-descendants)",
            spawn.max_descendants
        ),
    );
}

/// Whether the check `key` needs a probe of its own: it ends the probe (a
/// limit) or uses up a count that other checks would need.
pub fn needs_own_probe(key: &str) -> bool {
    [
        "cpu:",
        "sleep:",
        "handles:",
        "host-fds:",
        "scratch-bytes:",
        "children:",
        "descendants:",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}

/// The engine slots the probes of `checks` need at once: one per probe
/// worker, and the children the spawn checks keep alive (a child that
/// was just ended may hold its slot a moment longer).
pub fn slots_needed(checks: &[Check]) -> u32 {
    let workers = 1 + checks.iter().filter(|c| c.fatal).count() as u32;
    let children: u32 = checks
        .iter()
        .map(|c| {
            let count = || {
                c.check
                    .rsplit_once(':')
                    .and_then(|(_, n)| n.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            if c.check.starts_with("children:") {
                count().saturating_add(1)
            } else if c.check.starts_with("descendants:") || c.check.starts_with("spawn:") {
                2
            } else {
                0
            }
        })
        .fold(0, u32::saturating_add);
    workers.saturating_add(children)
}

fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

const UNGRANTED: &str = "corral-probe-ungranted";
const UNLISTED: &str = "corral-probe-unlisted";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyFile;
    use std::path::Path;

    #[test]
    fn plan_covers_every_knob() {
        let file = PolicyFile::parse(
            Path::new("p.toml"),
            r#"
[profiles.p]
memory = "8MiB"
cpu = "100ms"
env = ["A=1"]
mounts = ["@shared:/", "@scratch:/tmp:ro"]
[profiles.p.network]
connect = ["127.0.0.1:8000-8001", "10.0.0.0/8:443"]
[profiles.p.ipc]
queues = { "jobs-*" = ["get"] }
[profiles.p.spawn]
components = ["child"]
"#,
        )
        .unwrap();
        let checks = plan(&file.profile(None).unwrap());
        let find = |c: &str| {
            checks
                .iter()
                .find(|k| k.check == c)
                .unwrap_or_else(|| panic!("no check {c}"))
        };
        assert_eq!(find("fs-write:/").expected, Outcome::Allowed);
        assert_eq!(find("fs-write:/tmp").expected, Outcome::Denied);
        assert_eq!(find("fs-read:/../..").expected, Outcome::Denied);
        assert_eq!(find("env:A").expected, Outcome::Allowed);
        assert_eq!(find("env:PATH").expected, Outcome::Denied);
        assert_eq!(find("connect:127.0.0.1:8000").expected, Outcome::Allowed);
        assert_eq!(find("connect:127.0.0.1:1").expected, Outcome::Denied);
        assert!(
            !checks.iter().any(|c| c.check.contains("10.")),
            "never probes beyond loopback"
        );
        assert_eq!(find("bind:127.0.0.1:1").expected, Outcome::Denied);
        assert_eq!(find("ipc:queue:jobs-probe:get").expected, Outcome::Allowed);
        assert_eq!(find("ipc:queue:jobs-probe:put").expected, Outcome::Denied);
        assert_eq!(find("spawn:child").expected, Outcome::Allowed);
        assert_eq!(find(&format!("spawn:{UNLISTED}")).expected, Outcome::Denied);
        assert_eq!(
            find(&format!("memory:{}", 9 << 20)).expected,
            Outcome::Denied
        );
        let handles = find("handles:/:10000");
        assert!(handles.fatal && handles.expected == Outcome::Denied);
        assert!(find("descendants:child:64").fatal);
        assert!(
            !checks.iter().any(|c| c.check.starts_with("children:")),
            "8 MiB cannot hold 17 probe children: the memory cap would refuse them first"
        );
        assert!(
            !checks.iter().any(|c| c.check.starts_with("scratch-bytes:")),
            "the only scratch mount is read-only"
        );
        // The probe, the handles and descendants probes, two children at a
        // time for each spawning check, and the CPU probe.
        assert_eq!(slots_needed(&checks), 4 + 2 * 3);
        let cpu = find("cpu:3000");
        assert!(cpu.fatal && cpu.expected == Outcome::Killed);
    }
}
