//! `MemDir`, an open directory of a `MemFs`: lookups, opening, and the
//! operations that change names (create, remove, link, rename) under the
//! tree's locking rules. Knows nothing of mounts or permissions: the handles
//! check those first.

use std::mem;
use std::ops::Bound;
use std::sync::{Arc, RwLockWriteGuard};
use std::time::SystemTime;

use super::MemFs;
use super::file::MemFile;
use super::inode::{Body, DirState, Inode, is_ancestor_or_self, lock, lookup, read, write};
use super::quota::Accounts;
use super::walk::Walker;
use crate::vfs::backend::MemObject;
use crate::vfs::error::FsError;
use crate::vfs::path::{self, Component};
use crate::vfs::types::{DirEntry, Metadata, NewTimes, OpenOptions};

/// An open directory of a `MemFs`.
#[derive(Clone)]
pub(crate) struct MemDir {
    pub(super) fs: MemFs,
    pub(super) dir: Arc<Inode>,
}

/// What `MemDir::open_at` opened.
pub(crate) enum MemNode {
    Dir(MemDir),
    File(MemFile),
}

impl MemObject for MemDir {
    fn identity(&self) -> (u64, u64) {
        (self.accounts().device, self.dir.ino)
    }

    fn stat(&self) -> Metadata {
        self.dir.metadata()
    }

    fn set_times(&self, times: NewTimes) {
        let now = SystemTime::now();
        self.dir.update_attrs(|attrs| attrs.set_times(times, now));
    }
}

impl MemDir {
    fn accounts(&self) -> &Arc<Accounts> {
        &self.dir.accounts
    }

    fn walk(&self, path: &str) -> Result<Walker, FsError> {
        Walker::new(&self.dir, path)
    }

    /// Whether both handles belong to the same tree.
    pub(crate) fn same_fs(&self, other: &MemDir) -> bool {
        Arc::ptr_eq(&self.fs.shared, &other.fs.shared)
    }

    /// The caller has checked `path` (`path::check`).
    pub(crate) fn stat_at(&self, path: &str, follow: bool) -> Result<Metadata, FsError> {
        // One name, the usual `stat` of an entry of an open directory, needs
        // no walk and so allocates nothing; wasi-libc makes two such calls
        // per `stat`. A symlink takes the full walk.
        if !path.contains('/') && path != "." && path != ".." {
            let child = lookup(&self.dir, path)?;
            if child.symlink_target().is_none() {
                return Ok(child.metadata());
            }
        }
        Ok(self.walk(path)?.resolve(follow)?.metadata())
    }

    pub(crate) fn set_times_at(
        &self,
        path: &str,
        follow: bool,
        times: NewTimes,
    ) -> Result<(), FsError> {
        let node = self.walk(path)?.resolve(follow)?;
        let now = SystemTime::now();
        node.update_attrs(|attrs| attrs.set_times(times, now));
        Ok(())
    }

    pub(crate) fn read_dir(&self) -> Vec<DirEntry> {
        self.read_dir_after(None, usize::MAX)
    }

    /// Up to `limit` entries, in name order, from the first whose name
    /// sorts after `after` (from the first of all without one).
    pub(crate) fn read_dir_after(&self, after: Option<&str>, limit: usize) -> Vec<DirEntry> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        read(&self.dir.dir().state)
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(name, inode)| DirEntry {
                name: name.clone(),
                kind: inode.kind(),
            })
            .collect()
    }

    pub(crate) fn readlink_at(&self, path: &str) -> Result<String, FsError> {
        let node = self.walk(path)?.resolve(false)?;
        node.symlink_target()
            .map(str::to_owned)
            .ok_or(FsError::Invalid)
    }

    /// Opens (and perhaps creates) a file or directory. The caller has
    /// checked the combination of options and the mount's permissions.
    pub(crate) fn open_at(&self, path: &str, options: &OpenOptions) -> Result<MemNode, FsError> {
        let mut walk = self.walk(path)?;
        let (node, created) = loop {
            let node = match walk.next_last()? {
                Component::Current => Arc::clone(walk.top()),
                Component::Parent => {
                    walk.climb()?;
                    Arc::clone(walk.top())
                }
                Component::Name(_) if options.create && walk.must_be_dir => {
                    // Linux refuses "name/" with create before looking it up.
                    return Err(FsError::IsDirectory);
                }
                Component::Name(name) => {
                    let existing = match lookup(walk.top(), &name) {
                        Err(FsError::NoEntry) if options.create => {
                            match self.create_file(walk.top(), name)? {
                                Created::New(file) => break (file, true),
                                Created::Raced(existing) => existing,
                            }
                        }
                        found => found?,
                    };
                    if let Some(target) = existing.symlink_target() {
                        if options.create && options.exclusive {
                            return Err(FsError::Exist);
                        }
                        if !(options.follow_symlinks || walk.must_be_dir) {
                            // Linux checks O_DIRECTORY before O_NOFOLLOW.
                            return Err(if options.directory {
                                FsError::NotDirectory
                            } else {
                                FsError::Loop
                            });
                        }
                        walk.expand(target, true)?;
                        continue;
                    }
                    existing
                }
            };
            break (node, false);
        };
        if options.create && options.exclusive && !created {
            return Err(FsError::Exist);
        }
        if walk.must_be_dir && !node.is_dir() {
            return Err(FsError::NotDirectory);
        }
        match &node.body {
            Body::Dir(_) => {
                if options.write || options.append || options.create || options.truncate {
                    return Err(FsError::IsDirectory);
                }
                Ok(MemNode::Dir(MemDir {
                    fs: self.fs.clone(),
                    dir: node,
                }))
            }
            Body::File(state) => {
                if options.directory {
                    return Err(FsError::NotDirectory);
                }
                if options.truncate && !created {
                    let mut state = write(state);
                    let len = mem::take(&mut state.data).len();
                    node.accounts.release_bytes(len as u64);
                    state.attrs.modified(SystemTime::now());
                }
                Ok(MemNode::File(MemFile { inode: node }))
            }
            Body::Symlink { .. } => unreachable!("a final symlink was followed or refused"),
        }
    }

    /// Creates an empty file `name` in `parent`, unless another thread
    /// created the name since it was looked up.
    fn create_file(&self, parent: &Arc<Inode>, name: String) -> Result<Created, FsError> {
        let mut state = write(&parent.dir().state);
        if let Some(existing) = state.entries.get(&name) {
            return Ok(Created::Raced(Arc::clone(existing)));
        }
        state.check_linked()?;
        let now = SystemTime::now();
        let file = Inode::new_file(self.accounts(), now)?;
        state.entries.insert(name, Arc::clone(&file));
        state.attrs.modified(now);
        Ok(Created::New(file))
    }

    pub(crate) fn create_dir_at(&self, path: &str) -> Result<(), FsError> {
        let mut walk = self.walk(path)?;
        let name = walk.last_name(FsError::Exist)?;
        let parent = walk.top();
        let mut state = write(&parent.dir().state);
        if state.entries.contains_key(&name) {
            return Err(FsError::Exist);
        }
        state.check_linked()?;
        let now = SystemTime::now();
        let dir = Inode::new_dir(self.accounts(), parent, now)?;
        state.entries.insert(name, dir);
        state.attrs.nlink += 1;
        state.attrs.modified(now);
        Ok(())
    }

    pub(crate) fn remove_dir_at(&self, path: &str) -> Result<(), FsError> {
        let mut walk = self.walk(path)?;
        let name = match walk.next_last()? {
            Component::Name(name) => name,
            Component::Current => return Err(FsError::Invalid),
            Component::Parent => {
                walk.climb()?;
                return Err(FsError::NotEmpty);
            }
        };
        let mut state = write(&walk.top().dir().state);
        let child = state.entries.get(&name).ok_or(FsError::NoEntry)?;
        let Body::Dir(child_dir) = &child.body else {
            return Err(FsError::NotDirectory);
        };
        let now = SystemTime::now();
        {
            let mut child_state = write(&child_dir.state);
            if !child_state.entries.is_empty() {
                return Err(FsError::NotEmpty);
            }
            child_state.attrs.nlink = 0;
            child_state.attrs.ctime = now;
        }
        state.entries.remove(&name);
        state.attrs.nlink -= 1;
        state.attrs.modified(now);
        Ok(())
    }

    pub(crate) fn unlink_file_at(&self, path: &str) -> Result<(), FsError> {
        let mut walk = self.walk(path)?;
        let name = walk.last_name(FsError::IsDirectory)?;
        let mut state = write(&walk.top().dir().state);
        let child = state.entries.get(&name).ok_or(FsError::NoEntry)?;
        if child.is_dir() {
            return Err(FsError::IsDirectory);
        }
        if walk.must_be_dir {
            return Err(FsError::NotDirectory);
        }
        let now = SystemTime::now();
        child.drop_link(now);
        state.entries.remove(&name);
        state.attrs.modified(now);
        Ok(())
    }

    pub(crate) fn symlink_at(&self, target: &str, path: &str) -> Result<(), FsError> {
        path::parse(target)?;
        self.insert_symlink(target, path)
    }

    /// Creates a symlink without checking its target: seeding copies host
    /// links as they are, absolute ones included (they are never followed).
    pub(crate) fn insert_symlink(&self, target: &str, path: &str) -> Result<(), FsError> {
        let mut walk = self.walk(path)?;
        let (name, mut state) = lock_new_name(&mut walk)?;
        let now = SystemTime::now();
        let link = Inode::new_symlink(self.accounts(), target, now)?;
        state.entries.insert(name, link);
        state.attrs.modified(now);
        Ok(())
    }

    /// Adds the name `new` (from `new_dir`) for the non-directory `old`.
    /// The caller has checked that both handles are in one mount.
    pub(crate) fn link_at(&self, old: &str, new_dir: &MemDir, new: &str) -> Result<(), FsError> {
        let source = self.walk(old)?.resolve(false)?;
        let mut walk = new_dir.walk(new)?;
        let (name, mut state) = lock_new_name(&mut walk)?;
        // Linux checks the new name before refusing a directory.
        if source.is_dir() {
            return Err(FsError::NotPermitted);
        }
        let now = SystemTime::now();
        // The new name is counted before anything changes, and given back
        // if the file turns out to have no name left.
        self.accounts().reserve_name()?;
        let unlinked = source.update_attrs(|attrs| {
            if attrs.nlink == 0 {
                return true;
            }
            attrs.nlink += 1;
            attrs.ctime = now;
            false
        });
        if unlinked {
            self.accounts().release_name();
            // Linux refuses to give a name back to a file whose last name is gone.
            return Err(FsError::NoEntry);
        }
        state.entries.insert(name, source);
        state.attrs.modified(now);
        Ok(())
    }

    /// Moves `old` to `new` (in `new_dir`) atomically, replacing what `new`
    /// named if the kinds allow. The caller has checked that both handles
    /// are in one mount.
    pub(crate) fn rename_at(&self, old: &str, new_dir: &MemDir, new: &str) -> Result<(), FsError> {
        // Linux resolves both parents before it refuses `.` and `..`.
        let mut from = self.walk(old)?;
        let from_last = from.next_last()?;
        let mut to = new_dir.walk(new)?;
        let to_last = to.next_last()?;
        let from_name = from.name_of(from_last, FsError::Busy)?;
        let to_name = to.name_of(to_last, FsError::Busy)?;
        let must_be_dir = from.must_be_dir || to.must_be_dir;
        let (from_parent, to_parent) = (from.top(), to.top());
        let now = SystemTime::now();

        if Arc::ptr_eq(from_parent, to_parent) {
            let mut state = write(&from_parent.dir().state);
            let source = state.entries.get(&from_name).ok_or(FsError::NoEntry)?;
            if must_be_dir && !source.is_dir() {
                return Err(FsError::NotDirectory);
            }
            if !check_replace(source, state.entries.get(&to_name))? {
                return Ok(());
            }
            let source = state.entries.remove(&from_name).expect("looked up above");
            source.status_changed(now);
            if let Some(replaced) = state.entries.insert(to_name, source) {
                unlink_replaced(&replaced, &mut state, now);
            }
            state.attrs.modified(now);
            return Ok(());
        }

        let _shape_frozen = lock(&self.fs.shared.rename_lock);
        let (mut from_state, mut to_state) = if is_ancestor_or_self(to_parent, from_parent) {
            let to_state = write(&to_parent.dir().state);
            (write(&from_parent.dir().state), to_state)
        } else {
            let from_state = write(&from_parent.dir().state);
            (from_state, write(&to_parent.dir().state))
        };
        let source = from_state.entries.get(&from_name).ok_or(FsError::NoEntry)?;
        to_state.check_linked()?;
        let target = to_state.entries.get(&to_name);
        // Linux's order: trailing slash, then the two ancestry checks, then kinds.
        if must_be_dir && !source.is_dir() {
            return Err(FsError::NotDirectory);
        }
        if is_ancestor_or_self(source, to_parent) {
            return Err(FsError::Invalid);
        }
        // A target above the source is a non-empty directory; checking it
        // here also spares locking an ancestor of a locked directory.
        if target.is_some_and(|target| is_ancestor_or_self(target, from_parent)) {
            return Err(FsError::NotEmpty);
        }
        if !check_replace(source, target)? {
            return Ok(());
        }
        let source = from_state
            .entries
            .remove(&from_name)
            .expect("looked up above");
        if source.is_dir() {
            *lock(&source.dir().parent) = Arc::downgrade(to_parent);
            from_state.attrs.nlink -= 1;
            to_state.attrs.nlink += 1;
        }
        source.status_changed(now);
        if let Some(replaced) = to_state.entries.insert(to_name, source) {
            unlink_replaced(&replaced, &mut to_state, now);
        }
        from_state.attrs.modified(now);
        to_state.attrs.modified(now);
        Ok(())
    }
}

/// The outcome of `MemDir::create_file`.
enum Created {
    New(Arc<Inode>),
    /// Another thread created the name first.
    Raced(Arc<Inode>),
}

/// Walks to the directory that is to hold a new name of a file or symlink
/// (a symlink's, or a hard link's) and locks it: `Exist` if the name is
/// taken, `NoEntry` for "name/" (only directories take a trailing slash) or
/// a removed directory.
fn lock_new_name(walk: &mut Walker) -> Result<(String, RwLockWriteGuard<'_, DirState>), FsError> {
    let name = walk.last_name(FsError::Exist)?;
    let state = write(&walk.top().dir().state);
    if state.entries.contains_key(&name) {
        return Err(FsError::Exist);
    }
    if walk.must_be_dir {
        return Err(FsError::NoEntry);
    }
    state.check_linked()?;
    Ok((name, state))
}

/// Checks whether `source` may take the place of `target`: `Ok(false)` when
/// both are the same inode (POSIX: the rename does nothing).
fn check_replace(source: &Arc<Inode>, target: Option<&Arc<Inode>>) -> Result<bool, FsError> {
    let Some(target) = target else {
        return Ok(true);
    };
    if Arc::ptr_eq(source, target) {
        return Ok(false);
    }
    match (source.is_dir(), &target.body) {
        (true, Body::Dir(dir)) if !read(&dir.state).entries.is_empty() => Err(FsError::NotEmpty),
        (true, Body::Dir(_)) | (false, Body::File(_) | Body::Symlink { .. }) => Ok(true),
        (true, _) => Err(FsError::NotDirectory),
        (false, Body::Dir(_)) => Err(FsError::IsDirectory),
    }
}

/// Accounts for `replaced` losing its name in `parent` to a rename.
fn unlink_replaced(replaced: &Inode, parent: &mut DirState, now: SystemTime) {
    if replaced.is_dir() {
        replaced.update_attrs(|attrs| {
            attrs.nlink = 0;
            attrs.ctime = now;
        });
        parent.attrs.nlink -= 1;
    } else {
        replaced.drop_link(now);
    }
}
