//! The control socket of a running host (`corral run`, `up`, `pool`): a
//! Unix socket that `corral ps` and `corral kill` talk to, one JSON object
//! per line each way.
//!
//! It lives in `$XDG_RUNTIME_DIR/corral/` (else `/tmp/corral-$UID/`), a
//! directory only its owner may enter (0700, checked to be ours and no
//! symlink), as `<pid>-<run name>.sock` (0600), and is removed when the
//! host exits. A request can neither crash the host nor hold it up: lines
//! are bounded, malformed ones get an error reply, and each answer is a
//! snapshot that never waits on a worker.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::observe::Snapshot;
use crate::runtime::Runtime;

/// The longest request line read; a longer one is refused.
const MAX_REQUEST: u64 = 64 * 1024;
/// Connections served at once; more wait for a free one.
const MAX_CONNECTIONS: usize = 16;
/// How long a connection may take to send a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request from `corral ps` or `corral kill`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(super) enum Request {
    /// Who the host is: pid, run name, workers alive, uptime.
    Hello,
    /// The host's snapshot.
    Ps,
    /// Stop the workers named (or all live ones): terminate them, or with
    /// `grace_ms` ask them to finish up first.
    Kill {
        #[serde(default)]
        workers: Vec<String>,
        #[serde(default)]
        all: bool,
        #[serde(default)]
        grace_ms: Option<u64>,
    },
}

/// What a host says about itself (the answer to `hello`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HostInfo {
    pub pid: u32,
    pub name: String,
    pub command: String,
    /// Workers alive, pool instances included.
    pub workers_alive: u64,
    pub uptime_ms: u64,
    /// Where `--metrics` serves, if it does.
    pub metrics: Option<String>,
}

/// An answer: `ok` with what was asked, or an error that says why.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<Vec<String>>,
}

impl Reply {
    fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    fn error(error: impl Into<String>) -> Reply {
        Reply {
            error: Some(error.into()),
            ..Reply::default()
        }
    }
}

/// The directory of control sockets: `$XDG_RUNTIME_DIR/corral`, else
/// `/tmp/corral-$UID`.
pub(super) fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("corral"),
        // SAFETY: geteuid cannot fail.
        _ => PathBuf::from(format!("/tmp/corral-{}", unsafe { libc::geteuid() })),
    }
}

/// Creates `dir` (0700) or checks that the one there is a directory of
/// ours that nobody else can enter: in `/tmp`, another user could have
/// made it first.
fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me {
        return Err(io::Error::other(format!(
            "{} is not a directory of this user's",
            dir.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A run name as it may stand in a file name: letters, digits, `.`, `_`
/// and `-`, at most 48 of them (a socket path has at most 107 bytes).
fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if safe.is_empty() { "run".into() } else { safe }
}

/// The control socket of this host; removed when dropped.
pub(super) struct ControlSocket {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlSocket {
    /// Opens the socket of this host, run `name` of `command`, and serves
    /// it until dropped.
    pub fn open(
        runtime: &Runtime,
        command: &str,
        name: &str,
        metrics: Option<String>,
    ) -> io::Result<ControlSocket> {
        let dir = socket_dir();
        private_dir(&dir)?;
        let pid = std::process::id();
        let name = file_safe(name);
        let path = dir.join(format!("{pid}-{name}.sock"));
        // A socket of an earlier process that had this pid.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let host = Arc::new(Host {
            runtime: runtime.clone(),
            pid,
            name,
            command: command.into(),
            metrics,
        });
        let task = tokio::spawn(serve(listener, host));
        Ok(ControlSocket { path, task })
    }
}

/// What the socket answers from.
struct Host {
    runtime: Runtime,
    pid: u32,
    name: String,
    command: String,
    metrics: Option<String>,
}

async fn serve(listener: UnixListener, host: Arc<Host>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let host = host.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = converse(stream, &host).await;
        });
    }
}

/// Answers each request line of one connection until it closes.
async fn converse(stream: UnixStream, host: &Host) -> io::Result<()> {
    let peer = stream.peer_cred().ok().and_then(|c| c.pid());
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let mut bounded = (&mut lines).take(MAX_REQUEST);
        let read = bounded.read_until(b'\n', &mut line);
        match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
        let reply = if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REQUEST {
            Reply::error(format!("request longer than {MAX_REQUEST} bytes"))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => answer(host, request, peer),
                Err(e) => Reply::error(format!("bad request: {e}")),
            }
        };
        let mut text = serde_json::to_vec(&reply).map_err(io::Error::other)?;
        text.push(b'\n');
        write.write_all(&text).await?;
        if reply
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("request longer"))
        {
            return Ok(());
        }
    }
}

fn answer(host: &Host, request: Request, peer: Option<i32>) -> Reply {
    match request {
        Request::Hello => Reply {
            host: Some(host_info(host)),
            ..Reply::ok()
        },
        Request::Ps => Reply {
            host: Some(host_info(host)),
            snapshot: Some(host.runtime.snapshot()),
            ..Reply::ok()
        },
        Request::Kill {
            workers,
            all,
            grace_ms,
        } => kill(host, &workers, all, grace_ms, peer),
    }
}

fn host_info(host: &Host) -> HostInfo {
    let workers = host.runtime.workers();
    let pool_instances: u64 = host.runtime.pools().iter().map(|p| p.instances_alive).sum();
    HostInfo {
        pid: host.pid,
        name: host.name.clone(),
        command: host.command.clone(),
        workers_alive: workers.iter().filter(|w| w.is_alive()).count() as u64 + pool_instances,
        uptime_ms: host.runtime.uptime().as_millis() as u64,
        metrics: host.metrics.clone(),
    }
}

/// Stops the live workers named, or all of them, and pools of those names
/// (or all): a pool instance has no `shutdown-requested`, so pools are
/// terminated whatever the grace.
fn kill(
    host: &Host,
    names: &[String],
    all: bool,
    grace_ms: Option<u64>,
    peer: Option<i32>,
) -> Reply {
    let alive: Vec<crate::Worker> = host
        .runtime
        .workers()
        .into_iter()
        .filter(|w| w.is_alive())
        .collect();
    let pools: Vec<String> = host
        .runtime
        .snapshot()
        .pools
        .into_iter()
        .map(|p| p.name)
        .collect();
    let (workers, pools): (Vec<&crate::Worker>, Vec<&String>) = if all {
        (alive.iter().collect(), pools.iter().collect())
    } else {
        let (mut workers, mut chosen_pools) = (Vec::new(), Vec::new());
        for name in names {
            if let Some(w) = alive.iter().find(|w| w.name() == name) {
                workers.push(w);
            } else if let Some(pool) = pools.iter().find(|p| *p == name) {
                chosen_pools.push(pool);
            } else {
                return Reply::error(format!(
                    "no live worker or pool named `{name}` in this host"
                ));
            }
        }
        (workers, chosen_pools)
    };
    if workers.is_empty() && pools.is_empty() {
        return Reply::error(if all {
            "no live worker or pool to kill in this host"
        } else {
            "name a worker, or --all"
        });
    }
    let by = peer.map_or_else(String::new, |pid| format!(", from pid {pid}"));
    let mut killed: Vec<String> = workers.iter().map(|w| w.name().to_string()).collect();
    match grace_ms {
        Some(ms) if ms > 0 && !workers.is_empty() => {
            eprintln!(
                "corral: asking {} to stop within {} (corral kill{by})",
                killed.join(", "),
                humantime::format_duration(Duration::from_millis(ms))
            );
            for w in workers {
                let w = w.clone();
                tokio::spawn(async move { w.shutdown(Duration::from_millis(ms)).await });
            }
        }
        _ if !workers.is_empty() => {
            eprintln!(
                "corral: terminating {} (corral kill{by})",
                killed.join(", ")
            );
            workers.iter().for_each(|w| w.terminate());
        }
        _ => {}
    }
    for pool in pools {
        eprintln!("corral: terminating pool {pool} (corral kill{by})");
        killed.extend(host.runtime.terminate_pools(Some(pool)));
    }
    Reply {
        killed: Some(killed),
        ..Reply::ok()
    }
}
