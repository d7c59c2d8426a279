//! `corral policy test`: run a probe worker under a profile, try every
//! capability the profile names (and a few it does not), and compare what
//! happened with what was expected. Part of the CLI, not of `policy`: it
//! runs workers, and the policy module must stay below the runtime.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::ipc::{PipeConfig, QueueConfig};
use crate::output::Stdio;
use crate::policy::{AddrRule, ObjectKind, Profile};
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
    /// Whether it ends the probe (a limit), so it needs a probe of its own.
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

fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

const UNGRANTED: &str = "corral-probe-ungranted";
const UNLISTED: &str = "corral-probe-unlisted";

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
            ["spawn", component, ..] => run.register_component(*component, probe.clone()),
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

/// Runs `checks` with the probe `program` under `profile`: the non-fatal
/// ones in one worker, each fatal one in a worker of its own.
pub async fn run(
    runtime: &Runtime,
    program: &Program,
    profile: &Profile,
    checks: Vec<Check>,
) -> Vec<Observation> {
    let run = Run::new();
    prepare(&run, &checks, program);
    let spec = |name: &str, args: Vec<String>| {
        let mut spec = WorkerSpec::new(name)
            .args(args)
            .stdio(Stdio::Capture)
            .run(&run);
        profile.apply_to(&mut spec);
        spec
    };
    let (fatal, safe): (Vec<Check>, Vec<Check>) = checks.into_iter().partition(|c| c.fatal);
    let mut results = Vec::new();
    let mut batches: Vec<Vec<Check>> = vec![safe];
    batches.extend(fatal.into_iter().map(|c| vec![c]));
    for batch in batches.into_iter().filter(|b| !b.is_empty()) {
        let args = batch.iter().map(|c| c.check.clone()).collect();
        let worker = runtime.spawn(program, spec("policy-probe", args));
        let status = tokio::time::timeout(Duration::from_secs(120), worker.join()).await;
        let out = String::from_utf8_lossy(&worker.stdout()).into_owned();
        let mut seen: BTreeMap<String, ProbeLine> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<ProbeLine>(l).ok())
            .map(|l| (l.check.clone(), l))
            .collect();
        for check in batch {
            let (observed, detail) = match (seen.remove(&check.check), &status) {
                (Some(line), _) => (line.observed, line.detail),
                (None, Ok(ExitStatus::Killed { reason })) => (Outcome::Killed, reason.to_string()),
                (None, Ok(status)) => (
                    Outcome::Error,
                    format!("the probe ended first: {}", status.summary()),
                ),
                (None, Err(_)) => (
                    Outcome::Error,
                    "the probe did not finish within 2 minutes".into(),
                ),
            };
            results.push(Observation {
                check,
                observed,
                detail,
            });
        }
        if status.is_err() {
            worker.terminate();
        }
    }
    results
}

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
        let cpu = find("cpu:3000");
        assert!(cpu.fatal && cpu.expected == Outcome::Killed);
    }
}
