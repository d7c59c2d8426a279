//! `corral ps` and `corral kill`: find the hosts running on this machine
//! for this user by their control sockets, and ask them what they are doing
//! or to stop workers. A socket whose host is gone is reported and removed.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::control::{HostInfo, Reply, Request, socket_dir};
use crate::observe::{Snapshot, WorkerSnapshot};

/// How long a host may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A control socket found in the directory.
pub(super) struct Found {
    pub path: PathBuf,
    pid: u32,
    name: String,
}

/// What became of asking one.
enum Reached {
    Live(HostInfo),
    /// Its host is gone; the socket was removed.
    Stale,
}

/// Every control socket of this user's, by pid.
fn sockets() -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(socket_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let stem = path.file_name()?.to_str()?.strip_suffix(".sock")?;
            let (pid, name) = stem.split_once('-')?;
            Some(Found {
                pid: pid.parse().ok()?,
                name: name.to_string(),
                path,
            })
        })
        .collect();
    found.sort_by_key(|f| f.pid);
    found
}

/// Writes `text` to stdout; a reader that went away (`| head`) is no error.
fn print(text: String) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Whether process `pid` exists.
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Sends one request and reads its reply.
pub(super) fn ask(path: &Path, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(serde_json::from_str(&answer)?)
}

/// Whether the host of a socket that could not be asked is gone: nobody
/// listens on it (refused), or its process no longer exists. Its socket is
/// then removed.
fn gone_for_good(found: &Found, error: &std::io::Error) -> bool {
    let refused = matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
    );
    if refused || !process_exists(found.pid) {
        let _ = std::fs::remove_file(&found.path);
        return true;
    }
    false
}

/// Says hello to a socket's host; removes the socket if the host is gone.
fn reach(found: &Found) -> Reached {
    match ask(&found.path, &Request::Hello) {
        Ok(Reply {
            host: Some(info), ..
        }) => Reached::Live(info),
        Err(e) if gone_for_good(found, &e) => {
            eprintln!(
                "corral: removed the stale socket of host {} ({}): its process is gone",
                found.pid, found.name
            );
            Reached::Stale
        }
        _ => {
            // Alive but not answering (or not a corral): leave its socket.
            Reached::Live(HostInfo {
                pid: found.pid,
                name: found.name.clone(),
                command: "?".into(),
                workers_alive: 0,
                uptime_ms: 0,
                metrics: None,
            })
        }
    }
}

/// `corral ps [HOST] [--json]`.
#[derive(Debug, Args)]
pub(super) struct PsArgs {
    /// A host's pid or run name: list its workers and named objects
    host: Option<String>,
    /// Print JSON: the hosts, or the host's whole snapshot
    #[arg(long)]
    json: bool,
}

/// `corral kill HOST (WORKER... | --all) [--grace DURATION]`.
#[derive(Debug, Args)]
pub(super) struct KillArgs {
    /// The host's pid or run name (see `corral ps`)
    host: String,
    /// The workers to stop, by name
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    workers: Vec<String>,
    /// Stop every live worker of the host
    #[arg(long)]
    all: bool,
    /// Ask the workers to finish up (their shutdown-requested fires) and
    /// terminate them only after this long [default: terminate at once]
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    grace: Option<Duration>,
}

/// `corral ps`: the hosts, or one host's workers.
pub(super) fn ps(args: PsArgs) -> anyhow::Result<u8> {
    let (host, json) = (args.host.as_deref(), args.json);
    let Some(host) = host else {
        let live: Vec<HostInfo> = sockets()
            .iter()
            .filter_map(|f| match reach(f) {
                Reached::Live(info) => Some(info),
                Reached::Stale => None,
            })
            .collect();
        if json {
            print(serde_json::to_string_pretty(&live)? + "\n");
        } else if !live.is_empty() {
            print(hosts_table(&live));
        }
        return Ok(0);
    };
    let Some(found) = find(host)? else {
        return Ok(1);
    };
    let reply = match ask(&found.path, &Request::Ps) {
        Ok(reply) => reply,
        Err(e) => return Ok(gone(&found, &e)),
    };
    let (Some(info), Some(snapshot)) = (reply.host, reply.snapshot) else {
        anyhow::bail!("host {}: {}", found.pid, reply.error.unwrap_or_default());
    };
    if json {
        print(serde_json::to_string_pretty(&snapshot)? + "\n");
    } else {
        print(host_table(&info, &snapshot));
    }
    Ok(0)
}

/// `corral kill`: stops workers of a running host.
pub(super) fn kill(args: KillArgs) -> anyhow::Result<u8> {
    let Some(found) = find(&args.host)? else {
        return Ok(1);
    };
    let grace = args.grace;
    let request = Request::Kill {
        workers: args.workers,
        all: args.all,
        grace_ms: grace.map(|g| g.as_millis() as u64),
    };
    let reply = match ask(&found.path, &request) {
        Ok(reply) => reply,
        Err(e) => return Ok(gone(&found, &e)),
    };
    match (reply.killed, reply.error) {
        (Some(killed), _) => {
            let how = if grace.is_some_and(|g| !g.is_zero()) {
                "asked to stop"
            } else {
                "terminated"
            };
            print(format!("{how}: {}\n", killed.join(" ")));
            Ok(0)
        }
        (None, error) => {
            eprintln!(
                "corral: host {} ({}): {}",
                found.pid,
                found.name,
                error.unwrap_or_else(|| "no answer".into())
            );
            Ok(1)
        }
    }
}

/// The socket of `host` (a pid or a run name), or `None` after saying why
/// there is none.
pub(super) fn find(host: &str) -> anyhow::Result<Option<Found>> {
    let pid: Option<u32> = host.parse().ok();
    let mut matching: Vec<Found> = sockets()
        .into_iter()
        .filter(|f| Some(f.pid) == pid || f.name == host)
        .collect();
    if matching.len() > 1 {
        // Sockets that hosts killed by a signal left behind do not count.
        matching.retain(|f| !matches!(reach(f), Reached::Stale));
    }
    match matching.len() {
        0 => {
            eprintln!("corral: no running host `{host}` (`corral ps` lists them)");
            Ok(None)
        }
        1 => Ok(matching.pop()),
        _ => {
            let pids: Vec<String> = matching.iter().map(|f| f.pid.to_string()).collect();
            anyhow::bail!(
                "several hosts run `{host}` (pids {}): name one by its pid",
                pids.join(", ")
            )
        }
    }
}

/// Reports a host that could not be asked; returns exit code 1.
pub(super) fn gone(found: &Found, error: &std::io::Error) -> u8 {
    if gone_for_good(found, error) {
        eprintln!(
            "corral: host {} ({}) has exited; removed its stale socket",
            found.pid, found.name
        );
    } else {
        eprintln!(
            "corral: host {} ({}) does not answer on {}: {error}",
            found.pid,
            found.name,
            found.path.display()
        );
    }
    1
}

fn hosts_table(hosts: &[HostInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8}  {:<24} {:<5} {:>7} {:>9}  METRICS",
        "PID", "NAME", "CMD", "WORKERS", "UPTIME"
    );
    for h in hosts {
        let _ = writeln!(
            out,
            "{:>8}  {:<24} {:<5} {:>7} {:>9}  {}",
            h.pid,
            h.name,
            h.command,
            h.workers_alive,
            duration(h.uptime_ms),
            h.metrics.as_deref().unwrap_or("-")
        );
    }
    out
}

fn host_table(info: &HostInfo, snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {} ({} {}), up {}, {} workers alive",
        info.pid,
        info.command,
        info.name,
        duration(info.uptime_ms),
        info.workers_alive
    );
    let _ = writeln!(
        out,
        "{:<20} {:<32} {:>8} {:>10} {:>7} {:>5} {:>9}  PROFILE",
        "NAME", "STATE", "CPU", "MEMORY", "HANDLES", "FDS", "UPTIME"
    );
    for w in &snapshot.workers {
        let _ = writeln!(
            out,
            "{:<20} {:<32} {:>8} {:>10} {:>7} {:>5} {:>9}  {}",
            w.name,
            state(w),
            cpu_seconds(w.cpu_ns),
            bytes(w.memory_bytes),
            w.handles,
            w.host_fds,
            duration(w.uptime_ms),
            if w.profile.is_empty() {
                "-"
            } else {
                &w.profile
            }
        );
    }
    if !snapshot.objects.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:>7} {:>10} {:>10}  STATE",
            "KIND", "OBJECT", "DEPTH", "PUTS", "GETS"
        );
        for o in &snapshot.objects {
            let n = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
            let detail = match o.kind.as_str() {
                "lock" => match o.holder {
                    Some(id) => format!("held by {}", worker_name(snapshot, id)),
                    None if o.backend == "local" => "free".into(),
                    None => String::new(),
                },
                "semaphore" | "barrier" => format!("{}/{}", n(o.value), n(o.max)),
                "event" => match o.value {
                    Some(1) => "set".into(),
                    Some(_) => "clear".into(),
                    None => String::new(),
                },
                _ => String::new(),
            };
            let waiters = waiters(snapshot, &o.kind, &o.name);
            let detail = [detail, waiters]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            let _ = writeln!(
                out,
                "{:<10} {:<20} {:>7} {:>10} {:>10}  {}",
                o.kind,
                o.name,
                n(o.depth),
                n(o.puts),
                n(o.gets),
                detail.join("; ")
            );
        }
    }
    if !snapshot.pools.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>10} {:>10} {:>10} {:>8} {:>10}",
            "POOL", "INSTANCES", "SUCCEEDED", "FAILED", "STARTED", "CPU", "MEMORY"
        );
        for p in &snapshot.pools {
            let _ = writeln!(
                out,
                "{:<20} {:>9} {:>10} {:>10} {:>10} {:>8} {:>10}",
                p.name,
                p.size,
                p.succeeded,
                p.failed,
                p.instances_started,
                cpu_seconds(p.cpu_ns),
                bytes(p.memory_bytes)
            );
        }
    }
    if !snapshot.denials.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "denials in the last minute: {}",
            snapshot.denials.len()
        );
        for d in snapshot.denials.iter().rev().take(10) {
            let _ = writeln!(
                out,
                "  {} ago  {}  {}: {}",
                duration(d.ago_ms),
                d.worker,
                d.rule,
                d.action
            );
        }
    }
    out
}

/// The workers blocked on the object `kind` `name` (waiting on
/// `queue.get jobs`, say).
pub(super) fn blocked_on<'a>(
    snapshot: &'a Snapshot,
    kind: &'a str,
    name: &'a str,
) -> impl Iterator<Item = &'a WorkerSnapshot> {
    snapshot.workers.iter().filter(move |w| {
        w.waiting_on.as_deref().is_some_and(|on| {
            on.split_once(' ').is_some_and(|(op, object)| {
                op.starts_with(kind) && op[kind.len()..].starts_with('.') && object == name
            })
        })
    })
}

/// The workers blocked on an object, with how long each has waited.
fn waiters(snapshot: &Snapshot, kind: &str, name: &str) -> String {
    let waiting: Vec<String> = blocked_on(snapshot, kind, name)
        .map(|w| format!("{} {}", w.name, duration(w.waiting_ms.unwrap_or(0))))
        .collect();
    if waiting.is_empty() {
        String::new()
    } else {
        format!("waiting: {}", waiting.join(", "))
    }
}

/// The name of worker `id` in `snapshot`, or `worker ID` if it has gone.
pub(super) fn worker_name(snapshot: &Snapshot, id: u64) -> String {
    snapshot
        .workers
        .iter()
        .find(|w| w.id == id)
        .map_or_else(|| format!("worker {id}"), |w| w.name.clone())
}

pub(super) fn state(w: &WorkerSnapshot) -> String {
    match (&w.status, &w.waiting_on) {
        (Some(status), _) => status.clone(),
        (None, Some(on)) => format!("{on} ({})", duration(w.waiting_ms.unwrap_or(0))),
        (None, None) => w.state.clone(),
    }
}

/// CPU time as `1.23s`.
pub(super) fn cpu_seconds(ns: u64) -> String {
    format!("{:.2}s", ns as f64 / 1e9)
}

/// A size as `1.5 MiB`.
pub(super) fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec_short().to_string()
}

/// `1.2s`, `3m04s`, `2h05m`.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1}s", ms as f64 / 1e3),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
