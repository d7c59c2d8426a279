//! The quotas of a `MemFs`: what a tree may hold, what it holds now, and the
//! shared counters every inode gives its share back to. Depends on nothing
//! but the error type.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::vfs::error::FsError;

/// Caps on what one tree may hold; past them operations fail with `InsufficientSpace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file contents plus symlink targets, including files that are
    /// unlinked but still open.
    pub max_bytes: u64,
    /// Files, directories and symlinks, the root directory included, plus
    /// every name a hard link adds to a file (a name costs the host about
    /// what an inode does).
    pub max_inodes: u64,
}

/// Bytes of a private tree's budget per inode it may hold: a full inode
/// quota then holds at most about half its byte budget again in metadata
/// (an inode with a 255-byte name takes about 500 bytes of host memory).
const BYTES_PER_INODE: u64 = 1024;

impl Limits {
    /// No cap but the host's memory.
    pub const UNLIMITED: Limits = Limits {
        max_bytes: u64::MAX,
        max_inodes: u64::MAX,
    };

    /// A run's shared tree when the user sets no quota, and the byte budget
    /// of a private tree whose worker has no memory cap: 1 GiB and 1 Mi
    /// inodes (about 0.5 GiB of metadata when all are used), enough for any
    /// workload that fits in memory comfortably, and far from taking a host
    /// down.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 1 << 30,
        max_inodes: (1 << 30) / BYTES_PER_INODE,
    };

    /// The inode quota that goes with a byte budget of `max_bytes` in a
    /// private tree: one inode per KiB, at least 1024.
    pub fn inodes_for(max_bytes: u64) -> u64 {
        (max_bytes / BYTES_PER_INODE).max(1024)
    }
}

/// What a tree holds now, counted the way `Limits` caps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of file contents plus symlink targets (for a private tree, all
    /// that its budget holds: the worker's linear memory too).
    pub bytes: u64,
    /// Files, directories and symlinks, and extra hard-link names.
    pub inodes: u64,
}

/// A count of bytes against a cap, shared by whatever draws on it: a shared
/// tree alone, or a worker's linear memory and its private trees together,
/// so that neither can take what the other holds.
#[derive(Debug)]
pub struct ByteBudget {
    max: u64,
    used: AtomicU64,
}

impl ByteBudget {
    /// An empty budget of `max` bytes.
    pub fn new(max: u64) -> ByteBudget {
        ByteBudget {
            max,
            used: AtomicU64::new(0),
        }
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `n` bytes unless that would pass the cap; one atomic step,
    /// never half-applied. Returns whether it did.
    pub fn reserve(&self, n: u64) -> bool {
        reserve(&self.used, n, self.max)
    }

    /// Gives back `n` bytes taken by `reserve`.
    pub fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes taken from a [`ByteBudget`] for as long as this value lives: what
/// the host holds for a worker outside any tree, such as a host directory's
/// listing.
#[derive(Debug)]
pub struct ByteCharge {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl ByteCharge {
    /// Takes `bytes` from `budget` until the charge is dropped; `None` if
    /// that would pass its cap (nothing is taken then).
    pub fn take(budget: &Arc<ByteBudget>, bytes: u64) -> Option<ByteCharge> {
        budget.reserve(bytes).then(|| ByteCharge {
            budget: Arc::clone(budget),
            bytes,
        })
    }
}

impl Drop for ByteCharge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// Quota usage and identity allocation of one tree; every inode points here
/// so that dropping it can give its share back.
pub(super) struct Accounts {
    pub(super) max_inodes: u64,
    pub(super) device: u64,
    pub(super) bytes: Arc<ByteBudget>,
    pub(super) inodes: AtomicU64,
    pub(super) next_ino: AtomicU64,
}

impl Accounts {
    pub(super) fn reserve_bytes(&self, n: u64) -> Result<(), FsError> {
        if self.bytes.reserve(n) {
            Ok(())
        } else {
            Err(FsError::InsufficientSpace)
        }
    }

    pub(super) fn release_bytes(&self, n: u64) {
        self.bytes.release(n);
    }

    /// Counts one more inode against the quota and numbers it.
    pub(super) fn reserve_inode(&self) -> Result<u64, FsError> {
        self.reserve_name()?;
        Ok(self.next_ino.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts a name that names no new inode (a hard link) as an inode.
    pub(super) fn reserve_name(&self) -> Result<(), FsError> {
        if reserve(&self.inodes, 1, self.max_inodes) {
            Ok(())
        } else {
            Err(FsError::InsufficientSpace)
        }
    }

    /// Gives back what `reserve_name` or `reserve_inode` counted.
    pub(super) fn release_name(&self) {
        self.inodes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds `n` to `used` unless that would pass `max`; never half-applied.
fn reserve(used: &AtomicU64, n: u64, max: u64) -> bool {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
        current.checked_add(n).filter(|&total| total <= max)
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_what_passes_its_cap_and_takes_back_releases() {
        let budget = ByteBudget::new(100);
        assert!(budget.reserve(60));
        assert!(!budget.reserve(41), "60 + 41 passes 100");
        assert_eq!(budget.used(), 60, "a refused reserve takes nothing");
        assert!(budget.reserve(40));
        assert!(!budget.reserve(1));
        budget.release(50);
        assert!(budget.reserve(50));
        assert_eq!((budget.used(), budget.max()), (100, 100));
    }

    #[test]
    fn a_budget_never_overflows() {
        let budget = ByteBudget::new(u64::MAX);
        assert!(budget.reserve(u64::MAX - 1));
        assert!(!budget.reserve(2), "would wrap around");
        assert_eq!(budget.used(), u64::MAX - 1);
    }

    #[test]
    fn private_trees_get_an_inode_per_kib_and_at_least_1024() {
        assert_eq!(Limits::inodes_for(64 << 20), 65_536);
        assert_eq!(Limits::inodes_for(0), 1024);
        assert_eq!(Limits::DEFAULT.max_inodes, 1 << 20);
    }

    #[test]
    fn names_count_against_the_inode_quota() {
        let accounts = Accounts {
            max_inodes: 2,
            device: 0,
            bytes: Arc::new(ByteBudget::new(0)),
            inodes: AtomicU64::new(1),
            next_ino: AtomicU64::new(2),
        };
        accounts.reserve_name().unwrap();
        assert_eq!(accounts.reserve_inode(), Err(FsError::InsufficientSpace));
        accounts.release_name();
        assert_eq!(accounts.reserve_inode(), Ok(2));
        assert_eq!(accounts.reserve_bytes(1), Err(FsError::InsufficientSpace));
    }
}
