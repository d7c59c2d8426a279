//! `MemFs`: the in-memory tree that all workers of a run share.
//!
//! # Locking
//! Every inode has its own lock; there is no lock over the whole tree on
//! the data path, so work on one file never waits for work on another.
//! Deadlock freedom rests on one order: a thread that holds a directory's
//! lock may lock that directory's children, never its ancestors.
//! - Path resolution holds one directory read lock at a time, just long
//!   enough to look up one name.
//! - Creating, removing and linking lock the parent directory, then perhaps
//!   the child.
//! - A rename inside one directory locks that directory, then perhaps the
//!   children it touches.
//! - A rename between two directories first takes the tree's `rename_lock`
//!   (as Linux's `s_vfs_rename_mutex` does), which freezes the shape of the
//!   tree above the files: only such renames move directories. It then locks
//!   an ancestor before its descendant (unrelated directories in any order,
//!   since no other thread locks two directories at once).
//! - A directory's parent pointer sits in its own small mutex that is never
//!   held while taking another lock.
//!
//! # Lifetime
//! Inodes are reference counted: an open handle keeps its inode alive, so a
//! file unlinked while open stays readable and writable until the last
//! handle goes. Quota usage is released when the inode is finally dropped.
//!
//! # Layout
//! `quota` counts what the tree holds against its `Limits`; `inode` is
//! one file, directory or symlink and the lock helpers; `walk` resolves a
//! path; `dir` and `file` are the open directories and files that the
//! handles of a mount use. None of them depends on anything outside `vfs`.

mod dir;
mod file;
mod inode;
mod quota;
mod walk;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::SystemTime;

pub(super) use dir::{MemDir, MemNode};
pub(super) use file::MemFile;
use inode::{Attrs, Body, DirBody, DirState, Inode};
use quota::Accounts;
pub use quota::{ByteBudget, ByteCharge, Limits, Usage};

/// The in-memory tree shared by all workers of a run.
///
/// Cloning is cheap and yields the same tree. Workers reach it through
/// mounts (`Mount::mem`) of the whole tree or of a subtree.
#[derive(Clone)]
pub struct MemFs {
    shared: Arc<Shared>,
}

struct Shared {
    root: Arc<Inode>,
    accounts: Arc<Accounts>,
    /// Held by renames between two directories; see the module docs.
    rename_lock: Mutex<()>,
}

impl MemFs {
    /// Creates an empty tree (just a root directory) with these quotas.
    pub fn new(limits: Limits) -> MemFs {
        MemFs::with_budget(
            Arc::new(ByteBudget::new(limits.max_bytes)),
            limits.max_inodes,
        )
    }

    /// Creates an empty tree private to one worker, whose bytes come out of
    /// `budget` (the worker's memory cap, shared with its linear memory),
    /// with the inode quota that goes with the budget's size.
    pub fn private(budget: Arc<ByteBudget>) -> MemFs {
        let max_inodes = Limits::inodes_for(budget.max());
        MemFs::with_budget(budget, max_inodes)
    }

    fn with_budget(bytes: Arc<ByteBudget>, max_inodes: u64) -> MemFs {
        static NEXT_DEVICE: AtomicU64 = AtomicU64::new(0);
        let accounts = Arc::new(Accounts {
            max_inodes,
            device: (1 << 63) | NEXT_DEVICE.fetch_add(1, Ordering::Relaxed),
            bytes,
            // The root exists whatever the quota says; it is counted all the same.
            inodes: AtomicU64::new(1),
            next_ino: AtomicU64::new(2),
        });
        let now = SystemTime::now();
        let root = Arc::new(Inode {
            ino: 1,
            accounts: Arc::clone(&accounts),
            body: Body::Dir(DirBody {
                state: RwLock::new(DirState {
                    attrs: Attrs::new(2, now),
                    entries: BTreeMap::new(),
                }),
                parent: Mutex::new(Weak::new()),
            }),
        });
        MemFs {
            shared: Arc::new(Shared {
                root,
                accounts,
                rename_lock: Mutex::new(()),
            }),
        }
    }

    /// The quotas this tree was created with.
    pub fn limits(&self) -> Limits {
        let accounts = &self.shared.accounts;
        Limits {
            max_bytes: accounts.bytes.max(),
            max_inodes: accounts.max_inodes,
        }
    }

    /// How much of the quotas is in use now.
    pub fn usage(&self) -> Usage {
        let accounts = &self.shared.accounts;
        Usage {
            bytes: accounts.bytes.used(),
            inodes: accounts.inodes.load(Ordering::Acquire),
        }
    }

    /// The root directory, as the handles of a mount see it.
    pub(super) fn root_dir(&self) -> MemDir {
        MemDir {
            fs: self.clone(),
            dir: Arc::clone(&self.shared.root),
        }
    }
}
