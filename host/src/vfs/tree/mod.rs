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
pub use quota::{Limits, Usage};

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
        static NEXT_DEVICE: AtomicU64 = AtomicU64::new(0);
        let accounts = Arc::new(Accounts {
            limits,
            device: (1 << 63) | NEXT_DEVICE.fetch_add(1, Ordering::Relaxed),
            // The root exists whatever the quota says; it is counted all the same.
            bytes: AtomicU64::new(0),
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
        self.shared.accounts.limits
    }

    /// How much of the quotas is in use now.
    pub fn usage(&self) -> Usage {
        let accounts = &self.shared.accounts;
        Usage {
            bytes: accounts.bytes.load(Ordering::Acquire),
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
