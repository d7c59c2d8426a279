//! The ledger of host resources one worker makes the host hold: open
//! handles (files, directories, streams, sockets, name lookups) and host
//! file descriptors (files and sockets), each counted against the
//! worker's limit, and host descriptors also against a host-wide pool that
//! leaves a reserve for the host's own files, sockets, Redis and cache.
//!
//! Holding a resource is holding a [`Token`]; dropping it gives the count
//! back, so whatever a worker still holds when its store is dropped is
//! released with it. Taking or returning a token is two or three atomic
//! operations: it sits on the open and close paths.
//!
//! A leaf: no wasmtime, and nothing else of the crate.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Open handles (filesystem descriptors, directory and file streams,
/// sockets, name lookups) a worker may hold without a policy. Each costs the host a table entry
/// and a few hundred bytes; wasmtime traps a store past 100,000 live
/// component handles of every kind, so this leaves that room for sockets,
/// pollables and IPC handles, while no real program keeps 10,000 files open.
pub const DEFAULT_MAX_HANDLES: u32 = 10_000;

/// Host file descriptors a worker may make the host hold without a policy:
/// Linux's default soft `RLIMIT_NOFILE`, what programs written for Linux
/// expect to have.
pub const DEFAULT_MAX_HOST_FDS: u32 = 1024;

/// Descriptors below the process's `RLIMIT_NOFILE` that workers together
/// can never take: the host's own files, sockets, Redis connections,
/// compile cache and `--vfs-save`, plus the short-lived descriptors a
/// directory listing or a directory sync opens in passing.
pub const HOST_FD_RESERVE: usize = 256;

/// A kind of resource the ledger counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An open filesystem handle, socket or name lookup in the worker's
    /// resource table.
    Handle,
    /// A file descriptor the host process holds for the worker.
    HostFd,
}

impl Kind {
    /// The policy key that sets this kind's limit, as denial events name it.
    pub fn rule(self) -> &'static str {
        match self {
            Kind::Handle => "max-handles",
            Kind::HostFd => "max-host-fds",
        }
    }
}

/// A refused acquisition: which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    /// What was asked for.
    pub kind: Kind,
    /// The limit that was reached.
    pub limit: usize,
    /// Whether it was the host-wide pool rather than the worker's own limit.
    pub host_wide: bool,
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Handle => "open handles (files, streams, sockets)",
            Kind::HostFd => "host file descriptors",
        };
        if self.host_wide {
            write!(
                f,
                "holding more {what}: all workers together hold the host's {} \
                 (RLIMIT_NOFILE minus a reserve of {HOST_FD_RESERVE})",
                self.limit
            )
        } else {
            write!(f, "holding more than {} {what}", self.limit)
        }
    }
}

/// The limits of one worker's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerLimits {
    /// Most open handles.
    pub handles: usize,
    /// Most host file descriptors.
    pub host_fds: usize,
}

impl Default for LedgerLimits {
    fn default() -> LedgerLimits {
        LedgerLimits {
            handles: DEFAULT_MAX_HANDLES as usize,
            host_fds: DEFAULT_MAX_HOST_FDS as usize,
        }
    }
}

/// One worker's counts and limits, and whom to tell when a limit is hit.
pub struct Ledger {
    handles: AtomicUsize,
    host_fds: AtomicUsize,
    limits: LedgerLimits,
    /// Told of the first hit of each kind (later ones would only repeat it).
    on_limit: Box<dyn Fn(LimitHit) + Send + Sync>,
    handle_hit_told: AtomicBool,
    host_fd_hit_told: AtomicBool,
}

impl Ledger {
    /// A ledger with nothing held, that calls `on_limit` at the first hit
    /// of each kind.
    pub fn new(
        limits: LedgerLimits,
        on_limit: impl Fn(LimitHit) + Send + Sync + 'static,
    ) -> Ledger {
        Ledger {
            handles: AtomicUsize::new(0),
            host_fds: AtomicUsize::new(0),
            limits,
            on_limit: Box::new(on_limit),
            handle_hit_told: AtomicBool::new(false),
            host_fd_hit_told: AtomicBool::new(false),
        }
    }

    /// Takes one `kind` if the worker's limit (and, for host descriptors,
    /// the host-wide pool) allows it.
    pub fn try_acquire(self: &Arc<Self>, kind: Kind) -> Result<Token, LimitHit> {
        let (held, limit) = self.counter(kind);
        if held.fetch_add(1, Ordering::Relaxed) >= limit {
            held.fetch_sub(1, Ordering::Relaxed);
            return Err(self.hit(LimitHit {
                kind,
                limit,
                host_wide: false,
            }));
        }
        if kind == Kind::HostFd
            && let Err(limit) = HOST_FDS.try_acquire()
        {
            held.fetch_sub(1, Ordering::Relaxed);
            return Err(self.hit(LimitHit {
                kind,
                limit,
                host_wide: true,
            }));
        }
        Ok(Token {
            ledger: self.clone(),
            kind,
        })
    }

    /// How many of `kind` the worker holds now.
    pub fn held(&self, kind: Kind) -> usize {
        self.counter(kind).0.load(Ordering::Relaxed)
    }

    /// The worker's limits.
    pub fn limits(&self) -> LedgerLimits {
        self.limits
    }

    fn counter(&self, kind: Kind) -> (&AtomicUsize, usize) {
        match kind {
            Kind::Handle => (&self.handles, self.limits.handles),
            Kind::HostFd => (&self.host_fds, self.limits.host_fds),
        }
    }

    fn hit(&self, hit: LimitHit) -> LimitHit {
        let told = match hit.kind {
            Kind::Handle => &self.handle_hit_told,
            Kind::HostFd => &self.host_fd_hit_told,
        };
        if !told.swap(true, Ordering::Relaxed) {
            (self.on_limit)(hit);
        }
        hit
    }
}

impl Default for Ledger {
    /// The default limits, telling no one of hits.
    fn default() -> Ledger {
        Ledger::new(LedgerLimits::default(), |_| {})
    }
}

/// One held resource; dropping it gives it back.
pub struct Token {
    ledger: Arc<Ledger>,
    kind: Kind,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.ledger
            .counter(self.kind)
            .0
            .fetch_sub(1, Ordering::Relaxed);
        if self.kind == Kind::HostFd {
            HOST_FDS.release();
        }
    }
}

/// The descriptors all workers of this process hold, against the
/// process's limit minus [`HOST_FD_RESERVE`].
struct HostFdPool {
    held: AtomicUsize,
    /// 0 until first used or set by [`raise_fd_limit`].
    cap: AtomicUsize,
}

static HOST_FDS: HostFdPool = HostFdPool {
    held: AtomicUsize::new(0),
    cap: AtomicUsize::new(0),
};

impl HostFdPool {
    fn try_acquire(&self) -> Result<(), usize> {
        let cap = match self.cap.load(Ordering::Relaxed) {
            0 => {
                let cap = pool_cap(soft_fd_limit());
                self.cap.store(cap, Ordering::Relaxed);
                cap
            }
            cap => cap,
        };
        if self.held.fetch_add(1, Ordering::Relaxed) >= cap {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return Err(cap);
        }
        Ok(())
    }

    fn release(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pool workers share under a soft limit of `soft` descriptors
/// (at least 1, so that a nearly exhausted host still reports hits).
fn pool_cap(soft: usize) -> usize {
    soft.saturating_sub(HOST_FD_RESERVE).max(1)
}

fn soft_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return DEFAULT_MAX_HOST_FDS as usize;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Raises the process's soft `RLIMIT_NOFILE` to its hard limit (what
/// servers commonly do at start; the soft default of 1024 is for programs
/// that use `select`, which the host does not) and sizes the workers'
/// host-wide pool from it. Returns the new soft limit.
pub fn raise_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::debug!(
                    "cannot raise RLIMIT_NOFILE: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    let soft = soft_fd_limit();
    HOST_FDS.cap.store(pool_cap(soft), Ordering::Relaxed);
    soft
}

/// Host descriptors all workers of this process hold now.
pub fn host_fds_held() -> usize {
    HOST_FDS.held.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn acquire_up_to_the_limit_then_hit_once_and_give_back_on_drop() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let told = hits.clone();
        let ledger = Arc::new(Ledger::new(
            LedgerLimits {
                handles: 2,
                host_fds: 1,
            },
            move |hit| told.lock().unwrap().push(hit),
        ));
        let a = ledger.try_acquire(Kind::Handle).unwrap();
        let _b = ledger.try_acquire(Kind::Handle).unwrap();
        let hit = ledger.try_acquire(Kind::Handle).err().unwrap();
        assert_eq!(
            (hit.kind, hit.limit, hit.host_wide),
            (Kind::Handle, 2, false)
        );
        assert!(ledger.try_acquire(Kind::Handle).is_err());
        assert_eq!(ledger.held(Kind::Handle), 2);
        drop(a);
        assert_eq!(ledger.held(Kind::Handle), 1);
        let _c = ledger.try_acquire(Kind::Handle).unwrap();

        let fd = ledger.try_acquire(Kind::HostFd).unwrap();
        assert!(ledger.try_acquire(Kind::HostFd).is_err());
        drop(fd);
        assert_eq!(ledger.held(Kind::HostFd), 0);
        let kinds: Vec<Kind> = hits.lock().unwrap().iter().map(|hit| hit.kind).collect();
        assert_eq!(kinds, [Kind::Handle, Kind::HostFd], "one notice per kind");
    }

    #[test]
    fn the_pool_keeps_the_reserve() {
        assert_eq!(pool_cap(20_000), 20_000 - HOST_FD_RESERVE);
        assert_eq!(pool_cap(100), 1);
    }
}
