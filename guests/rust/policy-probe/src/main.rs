//! The probe `corral policy test` runs under a policy: it tries each
//! capability named on its command line and prints one JSON line per try:
//! `{"check": "...", "observed": "allowed" | "denied" | "error", "detail": "..."}`.
//!
//! Checks: `fs-read:PATH`, `fs-write:DIR`, `env:NAME`, `connect:ADDR`,
//! `bind:ADDR`, `udp:ADDR`, `lookup:HOST`, `ipc:KIND:NAME:OP`,
//! `spawn:COMPONENT`, `memory:BYTES`, `cpu:MILLIS`, `sleep:MILLIS`. The last
//! three end the probe when a limit kills it: the host reports that. `time`
//! and `random` report the clock and random bytes, to check replays.
//!
//! Counted limits, each tried one past the limit: `handles:DIR:N` and
//! `host-fds:DIR:N` open one file of DIR N+1 times, `children:COMPONENT:N`
//! keeps N+1 children alive, `descendants:COMPONENT:N` spawns and ends N+1
//! children one after the other, `scratch-bytes:DIR:N` grows a file of DIR to
//! N+1 bytes. Each is `denied` when the host refused before the last try.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use corral_guest::process::Child;
use corral_guest::{Barrier, Condition, Endpoint, Error, Event, Lock, Queue, Semaphore};

enum Observed {
    Allowed(String),
    Denied(String),
    Failed(String),
}

fn main() {
    for check in std::env::args().skip(1) {
        let observed = probe(&check);
        let (word, detail) = match observed {
            Observed::Allowed(d) => ("allowed", d),
            Observed::Denied(d) => ("denied", d),
            Observed::Failed(d) => ("error", d),
        };
        println!(
            "{{\"check\": {}, \"observed\": \"{word}\", \"detail\": {}}}",
            json(&check),
            json(&detail)
        );
        let _ = std::io::stdout().flush();
    }
}

fn json(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An OS-level error: permission errors are the policy saying no.
fn io(result: std::io::Result<String>) -> Observed {
    match result {
        Ok(detail) => Observed::Allowed(detail),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Observed::Denied(e.to_string())
        }
        Err(e) if e.raw_os_error() == Some(63) || e.raw_os_error() == Some(76) => {
            Observed::Denied(e.to_string())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Observed::Denied(format!("not visible: {e}")),
        Err(e) => Observed::Failed(e.to_string()),
    }
}

/// A network error: connection refused means the policy let it through.
fn net(result: std::io::Result<String>) -> Observed {
    match result {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrInUse | ErrorKind::TimedOut
            ) =>
        {
            Observed::Allowed(format!("let through ({e})"))
        }
        other => io(other),
    }
}

/// A Corral call's result: `denied` is the policy saying no.
fn corral<T>(result: Result<T, Error>) -> Observed {
    match result {
        Ok(_) => Observed::Allowed("ok".into()),
        Err(Error::Denied(why)) => Observed::Denied(why),
        Err(
            e @ (Error::Timeout
            | Error::Closed
            | Error::Broken
            | Error::Invalid(_)
            | Error::TooLarge(_)),
        ) => Observed::Allowed(format!("let through ({e:?})")),
        Err(e) => Observed::Failed(format!("{e:?}")),
    }
}

fn probe(check: &str) -> Observed {
    let (kind, arg) = check.split_once(':').unwrap_or((check, ""));
    match kind {
        "fs-read" => io(std::fs::read_dir(arg)
            .map(|d| format!("{} entries", d.count()))
            .or_else(|_| std::fs::read(arg).map(|b| format!("{} bytes", b.len())))),
        "fs-write" => {
            let path = format!("{}/.corral-probe", arg.trim_end_matches('/'));
            io(std::fs::write(&path, b"probe")
                .and_then(|()| std::fs::remove_file(&path))
                .map(|()| "wrote".into()))
        }
        "env" => match std::env::var(arg) {
            Ok(_) => Observed::Allowed("set".into()),
            Err(_) => Observed::Denied("not in the environment".into()),
        },
        "connect" => net(TcpStream::connect(arg).map(|_| "connected".into())),
        "bind" => net(TcpListener::bind(arg).map(|l| format!("bound {:?}", l.local_addr().ok()))),
        "udp" => net(UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.send_to(b"probe", arg))
            .map(|n| format!("sent {n}"))),
        // A refused lookup comes back as a resolver failure, not a
        // permission error: any failure to resolve `localhost` is a no.
        "lookup" => match (arg, 0).to_socket_addrs() {
            Ok(addrs) => Observed::Allowed(format!("{} addresses", addrs.count())),
            Err(e) => Observed::Denied(e.to_string()),
        },
        "ipc" => ipc(arg),
        "handles" | "host-fds" => match split_count(arg) {
            Some((dir, limit)) => open_past(dir, limit),
            None => Observed::Failed(format!("expected DIR:N, got `{arg}`")),
        },
        "children" => match split_count(arg) {
            Some((component, limit)) => children_past(component, limit),
            None => Observed::Failed(format!("expected COMPONENT:N, got `{arg}`")),
        },
        "descendants" => match split_count(arg) {
            Some((component, limit)) => descendants_past(component, limit),
            None => Observed::Failed(format!("expected COMPONENT:N, got `{arg}`")),
        },
        "scratch-bytes" => match split_count(arg) {
            Some((dir, limit)) => grow_past(dir, limit),
            None => Observed::Failed(format!("expected DIR:N, got `{arg}`")),
        },
        "spawn" => match Child::spawn(arg, "probe-child", &[]) {
            Ok(child) => {
                child.kill();
                Observed::Allowed(format!("spawned worker {}", child.id()))
            }
            Err(e) => corral::<()>(Err(e)),
        },
        "memory" => {
            let bytes: usize = arg.parse().unwrap_or(0);
            let mut block: Vec<u8> = Vec::new();
            match block.try_reserve_exact(bytes) {
                Ok(()) => {
                    block.resize(bytes, 1);
                    Observed::Allowed(format!("allocated {bytes} bytes"))
                }
                Err(e) => Observed::Denied(format!("allocation refused: {e}")),
            }
        }
        "cpu" => {
            let until = Instant::now() + Duration::from_millis(arg.parse().unwrap_or(0));
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            Observed::Allowed(format!("spun {x} times"))
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(arg.parse().unwrap_or(0)));
            Observed::Allowed("slept".into())
        }
        // Not capabilities: what a deterministic run must replay exactly.
        "time" => Observed::Allowed(format!(
            "{:?}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        )),
        "random" => Observed::Allowed(
            corral_guest::wasi::random::random::get_random_bytes(16)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
        other => Observed::Failed(format!("unknown check `{other}`")),
    }
}

/// `WHAT:N`, split at the last colon.
fn split_count(arg: &str) -> Option<(&str, u64)> {
    let (what, count) = arg.rsplit_once(':')?;
    Some((what, count.parse().ok()?))
}

/// A refusal of more of something: what the host answers at a limit.
fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::OutOfMemory
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::FileTooLarge
    )
}

/// Opens one file of `dir` `limit + 1` times, holding every handle.
fn open_past(dir: &str, limit: u64) -> Observed {
    let path = format!("{}/.corral-probe-handles", dir.trim_end_matches('/'));
    if let Err(e) = std::fs::write(&path, b"probe") {
        return io(Err(e));
    }
    let mut held = Vec::new();
    let result = loop {
        if held.len() as u64 > limit {
            break Observed::Allowed(format!("held {} open files", held.len()));
        }
        match std::fs::File::open(&path) {
            Ok(file) => held.push(file),
            Err(e) if refused(&e) => {
                break Observed::Denied(format!("refused after {} open files: {e}", held.len()));
            }
            Err(e) => break Observed::Failed(format!("after {} open files: {e}", held.len())),
        }
    };
    drop(held);
    let _ = std::fs::remove_file(&path);
    result
}

/// Keeps `limit + 1` children of `component` alive at once.
fn children_past(component: &str, limit: u64) -> Observed {
    let mut alive = Vec::new();
    while alive.len() as u64 <= limit {
        let name = format!("c{}", alive.len());
        match Child::spawn(component, &name, &["sleep:600000".to_string()]) {
            Ok(child) => alive.push(child),
            Err(Error::Denied(why)) if alive.len() as u64 == limit => {
                return Observed::Denied(format!("refused with {limit} alive: {why}"));
            }
            Err(e) => return Observed::Failed(format!("with {} alive: {e:?}", alive.len())),
        }
    }
    Observed::Allowed(format!("{} children alive", alive.len()))
}

/// Spawns `limit + 1` children of `component`, each ended before the next.
fn descendants_past(component: &str, limit: u64) -> Observed {
    for spawned in 0..=limit {
        match Child::spawn(component, &format!("d{spawned}"), &[]) {
            Ok(child) => {
                child.kill();
                // A child counts as alive until it has ended.
                let _ = child.join(Some(10_000_000_000));
            }
            Err(Error::Denied(why)) if spawned == limit => {
                return Observed::Denied(format!("refused after {limit} spawned: {why}"));
            }
            Err(e) => return Observed::Failed(format!("after {spawned} spawned: {e:?}")),
        }
    }
    Observed::Allowed(format!("spawned {}", limit + 1))
}

/// Grows a file of `dir` to `limit + 1` bytes. A data write past the limit
/// would be refused too, but through an output stream, whose failures
/// wasi-libc reports as a bare EIO: growing the file gets the host's own
/// answer.
fn grow_past(dir: &str, limit: u64) -> Observed {
    let path = format!("{}/.corral-probe-bytes", dir.trim_end_matches('/'));
    let result = std::fs::File::create(&path).and_then(|file| file.set_len(limit + 1));
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => Observed::Allowed(format!("grew a file to {} bytes", limit + 1)),
        Err(e) if refused(&e) => Observed::Denied(format!("refused: {e}")),
        Err(e) => io(Err(e)),
    }
}

/// `KIND:NAME:OP`: open the object and try the operation without waiting.
fn ipc(arg: &str) -> Observed {
    let mut parts = arg.splitn(3, ':');
    let (kind, name, op) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("open"),
    );
    let now = Some(0);
    match (kind, op) {
        ("queue", _) => match Queue::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(q) => match op {
                "put" => corral(q.try_put(b"probe")),
                "get" => corral(q.try_get()),
                "close" => corral(q.close()),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("pipe", _) => match Endpoint::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(p) => match op {
                "send" => corral(p.send(b"probe", now)),
                "recv" => corral(p.try_recv()),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("lock", _) => match Lock::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(l) => match op {
                "acquire" => corral(l.try_acquire()),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("semaphore", _) => match Semaphore::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(s) => match op {
                "acquire" => corral(s.try_acquire()),
                "release" => corral(s.release()),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("event", _) => match Event::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(e) => match op {
                "set" => corral(e.set()),
                "wait" => corral(e.wait(now)),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("barrier", _) => match Barrier::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(b) => match op {
                "wait" => corral(b.wait(now)),
                "abort" => corral(b.abort()),
                _ => Observed::Allowed("opened".into()),
            },
        },
        ("condition", _) => match Condition::open(name) {
            Err(e) => corral::<()>(Err(e)),
            Ok(c) => match op {
                "notify" => corral(c.notify(1)),
                _ => Observed::Allowed("opened".into()),
            },
        },
        _ => Observed::Failed(format!("unknown object kind `{kind}`")),
    }
}
