//! One inode of a `MemFs` (file, directory or symlink), its attributes, and
//! the lock helpers every part of the tree uses. Knows nothing of paths,
//! mounts or handles.

use std::collections::BTreeMap;
use std::mem;
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::SystemTime;

use super::quota::Accounts;
use crate::vfs::error::FsError;
use crate::vfs::types::{FileKind, Metadata, NewTimes, NewTimestamp};

/// Timestamps and link count, which every kind of inode has.
#[derive(Clone, Copy)]
pub(super) struct Attrs {
    pub(super) nlink: u64,
    pub(super) atime: SystemTime,
    pub(super) mtime: SystemTime,
    pub(super) ctime: SystemTime,
}

impl Attrs {
    pub(super) fn new(nlink: u64, now: SystemTime) -> Attrs {
        Attrs {
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    /// Records a change of contents, which is also a change of status.
    pub(super) fn modified(&mut self, now: SystemTime) {
        self.mtime = now;
        self.ctime = now;
    }

    pub(super) fn set_times(&mut self, times: NewTimes, now: SystemTime) {
        let NewTimes { atime, mtime } = times;
        if atime == NewTimestamp::NoChange && mtime == NewTimestamp::NoChange {
            return;
        }
        let pick = |new, old| match new {
            NewTimestamp::NoChange => old,
            NewTimestamp::Now => now,
            NewTimestamp::Timestamp(time) => time,
        };
        self.atime = pick(atime, self.atime);
        self.mtime = pick(mtime, self.mtime);
        self.ctime = now;
    }
}

pub(super) struct Inode {
    pub(super) ino: u64,
    pub(super) accounts: Arc<Accounts>,
    pub(super) body: Body,
}

/// What an inode is never changes, so its kind (and a symlink's target)
/// can be read without locking.
pub(super) enum Body {
    File(RwLock<FileState>),
    Dir(DirBody),
    Symlink {
        target: Box<str>,
        attrs: RwLock<Attrs>,
    },
}

pub(super) struct FileState {
    pub(super) attrs: Attrs,
    pub(super) data: Vec<u8>,
}

pub(super) struct DirBody {
    pub(super) state: RwLock<DirState>,
    /// The directory that holds this one; see the module docs for its locking.
    pub(super) parent: Mutex<Weak<Inode>>,
}

pub(super) struct DirState {
    /// 2 plus the number of subdirectories while linked, 0 once removed.
    pub(super) attrs: Attrs,
    pub(super) entries: BTreeMap<String, Arc<Inode>>,
}

impl DirState {
    /// A removed directory accepts no new entries (POSIX: `ENOENT`).
    pub(super) fn check_linked(&self) -> Result<(), FsError> {
        if self.attrs.nlink == 0 {
            Err(FsError::NoEntry)
        } else {
            Ok(())
        }
    }
}

/// Lock helpers that ignore poisoning: every mutation checks before it
/// changes anything, so a panic elsewhere never leaves a half-done change.
pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inode {
    fn new(accounts: &Arc<Accounts>, body: Body) -> Result<Arc<Inode>, FsError> {
        let ino = accounts.reserve_inode()?;
        Ok(Arc::new(Inode {
            ino,
            accounts: Arc::clone(accounts),
            body,
        }))
    }

    pub(super) fn new_file(
        accounts: &Arc<Accounts>,
        now: SystemTime,
    ) -> Result<Arc<Inode>, FsError> {
        let state = FileState {
            attrs: Attrs::new(1, now),
            data: Vec::new(),
        };
        Inode::new(accounts, Body::File(RwLock::new(state)))
    }

    pub(super) fn new_dir(
        accounts: &Arc<Accounts>,
        parent: &Arc<Inode>,
        now: SystemTime,
    ) -> Result<Arc<Inode>, FsError> {
        let state = DirState {
            attrs: Attrs::new(2, now),
            entries: BTreeMap::new(),
        };
        let body = DirBody {
            state: RwLock::new(state),
            parent: Mutex::new(Arc::downgrade(parent)),
        };
        Inode::new(accounts, Body::Dir(body))
    }

    pub(super) fn new_symlink(
        accounts: &Arc<Accounts>,
        target: &str,
        now: SystemTime,
    ) -> Result<Arc<Inode>, FsError> {
        accounts.reserve_bytes(target.len() as u64)?;
        let body = Body::Symlink {
            target: target.into(),
            attrs: RwLock::new(Attrs::new(1, now)),
        };
        Inode::new(accounts, body).inspect_err(|_| accounts.release_bytes(target.len() as u64))
    }

    pub(super) fn kind(&self) -> FileKind {
        match self.body {
            Body::File(_) => FileKind::RegularFile,
            Body::Dir(_) => FileKind::Directory,
            Body::Symlink { .. } => FileKind::SymbolicLink,
        }
    }

    pub(super) fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    pub(super) fn symlink_target(&self) -> Option<&str> {
        match &self.body {
            Body::Symlink { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The directory part of an inode known to be a directory.
    pub(super) fn dir(&self) -> &DirBody {
        match &self.body {
            Body::Dir(dir) => dir,
            // Only directories are ever placed where this is called: walk
            // stacks and `MemDir`s.
            _ => unreachable!("inode {} is not a directory", self.ino),
        }
    }

    pub(super) fn parent(&self) -> Option<Arc<Inode>> {
        lock(&self.dir().parent).upgrade()
    }

    pub(super) fn metadata(&self) -> Metadata {
        let (size, attrs) = match &self.body {
            Body::File(state) => {
                let state = read(state);
                (state.data.len(), state.attrs)
            }
            Body::Dir(dir) => {
                let state = read(&dir.state);
                (state.entries.len(), state.attrs)
            }
            Body::Symlink { target, attrs } => (target.len(), *read(attrs)),
        };
        Metadata {
            kind: self.kind(),
            device: self.accounts.device,
            inode: self.ino,
            nlink: attrs.nlink,
            size: size as u64,
            atime: Some(attrs.atime),
            mtime: Some(attrs.mtime),
            ctime: Some(attrs.ctime),
        }
    }

    /// Runs `change` on the inode's attributes under its write lock.
    pub(super) fn update_attrs<R>(&self, change: impl FnOnce(&mut Attrs) -> R) -> R {
        match &self.body {
            Body::File(state) => change(&mut write(state).attrs),
            Body::Dir(dir) => change(&mut write(&dir.state).attrs),
            Body::Symlink { attrs, .. } => change(&mut write(attrs)),
        }
    }

    /// Records that a directory entry naming this non-directory went away.
    /// An extra name gives back its count at once; the last one is counted
    /// with the inode until the inode goes (it may still be open).
    pub(super) fn drop_link(&self, now: SystemTime) {
        let named_still = self.update_attrs(|attrs| {
            attrs.nlink -= 1;
            attrs.ctime = now;
            attrs.nlink > 0
        });
        if named_still {
            self.accounts.release_name();
        }
    }

    /// Records a change of status alone (POSIX `ctime`), as a rename makes.
    pub(super) fn status_changed(&self, now: SystemTime) {
        self.update_attrs(|attrs| attrs.ctime = now);
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        // A file or symlink is counted once per name it still has (only a
        // whole tree going away drops one that still has names), and once
        // while it has none.
        let mut names = 1;
        let bytes = match &mut self.body {
            Body::File(state) => {
                let state = state.get_mut().unwrap_or_else(PoisonError::into_inner);
                names = state.attrs.nlink.max(1);
                state.data.len()
            }
            Body::Symlink { target, attrs } => {
                names = attrs
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .nlink
                    .max(1);
                target.len()
            }
            Body::Dir(dir) => {
                // Children are dropped here one by one rather than by
                // recursion, so a very deep tree cannot overflow the stack.
                let mut orphans = take_entries(dir);
                while let Some(child) = orphans.pop() {
                    if let Some(mut child) = Arc::into_inner(child)
                        && let Body::Dir(child_dir) = &mut child.body
                    {
                        orphans.extend(take_entries(child_dir));
                    }
                }
                0
            }
        };
        self.accounts.release_bytes(bytes as u64);
        for _ in 0..names {
            self.accounts.release_name();
        }
    }
}

fn take_entries(dir: &mut DirBody) -> Vec<Arc<Inode>> {
    let state = dir.state.get_mut().unwrap_or_else(PoisonError::into_inner);
    mem::take(&mut state.entries).into_values().collect()
}

/// Looks `name` up in the directory `dir`.
pub(super) fn lookup(dir: &Inode, name: &str) -> Result<Arc<Inode>, FsError> {
    read(&dir.dir().state)
        .entries
        .get(name)
        .cloned()
        .ok_or(FsError::NoEntry)
}

/// Whether `ancestor` is `node` or one of the directories above it.
pub(super) fn is_ancestor_or_self(ancestor: &Arc<Inode>, node: &Arc<Inode>) -> bool {
    let mut current = Some(Arc::clone(node));
    while let Some(dir) = current {
        if Arc::ptr_eq(&dir, ancestor) {
            return true;
        }
        current = dir.parent();
    }
    false
}
