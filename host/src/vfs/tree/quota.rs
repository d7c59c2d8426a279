//! The quotas of a `MemFs`: what a tree may hold, what it holds now, and the
//! shared counters every inode gives its share back to. Depends on nothing
//! but the error type.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::vfs::error::FsError;

/// Caps on what one tree may hold; past them operations fail with `InsufficientSpace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file contents plus symlink targets, including files that are
    /// unlinked but still open.
    pub max_bytes: u64,
    /// Files, directories and symlinks, the root directory included.
    pub max_inodes: u64,
}

impl Limits {
    /// No cap but the host's memory.
    pub const UNLIMITED: Limits = Limits {
        max_bytes: u64::MAX,
        max_inodes: u64::MAX,
    };
}

/// What a tree holds now, counted the way `Limits` caps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of file contents plus symlink targets.
    pub bytes: u64,
    /// Files, directories and symlinks.
    pub inodes: u64,
}

/// Quota usage and identity allocation of one tree; every inode points here
/// so that dropping it can give its share back.
pub(super) struct Accounts {
    pub(super) limits: Limits,
    pub(super) device: u64,
    pub(super) bytes: AtomicU64,
    pub(super) inodes: AtomicU64,
    pub(super) next_ino: AtomicU64,
}

impl Accounts {
    pub(super) fn reserve_bytes(&self, n: u64) -> Result<(), FsError> {
        reserve(&self.bytes, n, self.limits.max_bytes)
    }

    pub(super) fn release_bytes(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
    }

    /// Counts one more inode against the quota and numbers it.
    pub(super) fn reserve_inode(&self) -> Result<u64, FsError> {
        reserve(&self.inodes, 1, self.limits.max_inodes)?;
        Ok(self.next_ino.fetch_add(1, Ordering::Relaxed))
    }
}

/// Adds `n` to `used` unless that would pass `max`; never half-applied.
fn reserve(used: &AtomicU64, n: u64, max: u64) -> Result<(), FsError> {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
        current.checked_add(n).filter(|&total| total <= max)
    })
    .map(drop)
    .map_err(|_| FsError::InsufficientSpace)
}
