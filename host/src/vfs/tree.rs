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

use std::collections::BTreeMap;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::SystemTime;

use super::error::FsError;
use super::path::{self, Component, MAX_SYMLINK_HOPS};
use super::types::{DirEntry, FileKind, Metadata, NewTimestamp, OpenOptions};

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

/// Quota usage and identity allocation of one tree; every inode points here
/// so that dropping it can give its share back.
struct Accounts {
    limits: Limits,
    device: u64,
    bytes: AtomicU64,
    inodes: AtomicU64,
    next_ino: AtomicU64,
}

impl Accounts {
    fn reserve_bytes(&self, n: u64) -> Result<(), FsError> {
        reserve(&self.bytes, n, self.limits.max_bytes)
    }

    fn release_bytes(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
    }

    /// Counts one more inode against the quota and numbers it.
    fn reserve_inode(&self) -> Result<u64, FsError> {
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

/// Timestamps and link count, which every kind of inode has.
#[derive(Clone, Copy)]
struct Attrs {
    nlink: u64,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Attrs {
    fn new(nlink: u64, now: SystemTime) -> Attrs {
        Attrs {
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    /// Records a change of contents, which is also a change of status.
    fn modified(&mut self, now: SystemTime) {
        self.mtime = now;
        self.ctime = now;
    }

    fn set_times(&mut self, atime: NewTimestamp, mtime: NewTimestamp, now: SystemTime) {
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

struct Inode {
    ino: u64,
    accounts: Arc<Accounts>,
    body: Body,
}

/// What an inode is never changes, so its kind (and a symlink's target)
/// can be read without locking.
enum Body {
    File(RwLock<FileState>),
    Dir(DirBody),
    Symlink {
        target: Box<str>,
        attrs: RwLock<Attrs>,
    },
}

struct FileState {
    attrs: Attrs,
    data: Vec<u8>,
}

struct DirBody {
    state: RwLock<DirState>,
    /// The directory that holds this one; see the module docs for its locking.
    parent: Mutex<Weak<Inode>>,
}

struct DirState {
    /// 2 plus the number of subdirectories while linked, 0 once removed.
    attrs: Attrs,
    entries: BTreeMap<String, Arc<Inode>>,
}

impl DirState {
    /// A removed directory accepts no new entries (POSIX: `ENOENT`).
    fn check_linked(&self) -> Result<(), FsError> {
        if self.attrs.nlink == 0 {
            Err(FsError::NoEntry)
        } else {
            Ok(())
        }
    }
}

/// Lock helpers that ignore poisoning: every mutation checks before it
/// changes anything, so a panic elsewhere never leaves a half-done change.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

    fn new_file(accounts: &Arc<Accounts>, now: SystemTime) -> Result<Arc<Inode>, FsError> {
        let state = FileState {
            attrs: Attrs::new(1, now),
            data: Vec::new(),
        };
        Inode::new(accounts, Body::File(RwLock::new(state)))
    }

    fn new_dir(
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

    fn new_symlink(
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

    fn kind(&self) -> FileKind {
        match self.body {
            Body::File(_) => FileKind::RegularFile,
            Body::Dir(_) => FileKind::Directory,
            Body::Symlink { .. } => FileKind::SymbolicLink,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    fn symlink_target(&self) -> Option<&str> {
        match &self.body {
            Body::Symlink { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The directory part of an inode known to be a directory.
    fn dir(&self) -> &DirBody {
        match &self.body {
            Body::Dir(dir) => dir,
            // Only directories are ever placed where this is called: walk
            // stacks and `MemDir`s.
            _ => unreachable!("inode {} is not a directory", self.ino),
        }
    }

    fn parent(&self) -> Option<Arc<Inode>> {
        lock(&self.dir().parent).upgrade()
    }

    fn metadata(&self) -> Metadata {
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
    fn update_attrs<R>(&self, change: impl FnOnce(&mut Attrs) -> R) -> R {
        match &self.body {
            Body::File(state) => change(&mut write(state).attrs),
            Body::Dir(dir) => change(&mut write(&dir.state).attrs),
            Body::Symlink { attrs, .. } => change(&mut write(attrs)),
        }
    }

    /// Records that a directory entry naming this inode went away.
    fn drop_link(&self, now: SystemTime) {
        self.update_attrs(|attrs| {
            attrs.nlink -= 1;
            attrs.ctime = now;
        });
    }

    /// Records a change of status alone (POSIX `ctime`), as a rename makes.
    fn status_changed(&self, now: SystemTime) {
        self.update_attrs(|attrs| attrs.ctime = now);
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        self.accounts.inodes.fetch_sub(1, Ordering::AcqRel);
        let bytes = match &mut self.body {
            Body::File(state) => state
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .data
                .len(),
            Body::Symlink { target, .. } => target.len(),
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
    }
}

fn take_entries(dir: &mut DirBody) -> Vec<Arc<Inode>> {
    let state = dir.state.get_mut().unwrap_or_else(PoisonError::into_inner);
    mem::take(&mut state.entries).into_values().collect()
}

/// Looks `name` up in the directory `dir`.
fn lookup(dir: &Inode, name: &str) -> Result<Arc<Inode>, FsError> {
    read(&dir.dir().state)
        .entries
        .get(name)
        .cloned()
        .ok_or(FsError::NoEntry)
}

/// Whether `ancestor` is `node` or one of the directories above it.
fn is_ancestor_or_self(ancestor: &Arc<Inode>, node: &Arc<Inode>) -> bool {
    let mut current = Some(Arc::clone(node));
    while let Some(dir) = current {
        if Arc::ptr_eq(&dir, ancestor) {
            return true;
        }
        current = dir.parent();
    }
    false
}

/// One path resolution in progress.
///
/// `..` pops the stack of directories entered so far and may never pop the
/// directory the walk started from: a handle reaches only what lies below
/// it, like a cap-std `Dir`. Symlink targets are pushed in front of the
/// components still to walk, so they resolve from the link's directory and
/// obey the same limit.
struct Walker {
    stack: Vec<Arc<Inode>>,
    /// Components still to walk, the next one last.
    pending: Vec<Component>,
    hops: u32,
    /// The last component must turn out to be a directory (a trailing slash).
    must_be_dir: bool,
}

impl Walker {
    fn new(start: &Arc<Inode>, path: &str) -> Result<Walker, FsError> {
        let parsed = path::parse(path)?;
        let mut pending = parsed.components;
        pending.reverse();
        Ok(Walker {
            stack: vec![Arc::clone(start)],
            pending,
            hops: 0,
            must_be_dir: parsed.trailing_slash,
        })
    }

    /// The directory reached so far.
    fn top(&self) -> &Arc<Inode> {
        self.stack
            .last()
            .expect("the walk stack always holds its start")
    }

    fn climb(&mut self) -> Result<(), FsError> {
        if self.stack.len() == 1 {
            return Err(FsError::NotPermitted);
        }
        self.stack.pop();
        Ok(())
    }

    /// Queues a symlink's target in place of the link.
    fn expand(&mut self, target: &str, is_last: bool) -> Result<(), FsError> {
        self.hops += 1;
        if self.hops > MAX_SYMLINK_HOPS {
            return Err(FsError::Loop);
        }
        let parsed = path::parse(target)?;
        if is_last && parsed.trailing_slash {
            self.must_be_dir = true;
        }
        self.pending.extend(parsed.components.into_iter().rev());
        Ok(())
    }

    /// Walks every component but the last and returns the last, leaving its
    /// directory at `top()`.
    fn next_last(&mut self) -> Result<Component, FsError> {
        loop {
            let component = self
                .pending
                .pop()
                .expect("paths and link targets have at least one component");
            if self.pending.is_empty() {
                return Ok(component);
            }
            match component {
                Component::Current => {}
                Component::Parent => self.climb()?,
                Component::Name(name) => {
                    let child = lookup(self.top(), &name)?;
                    match &child.body {
                        Body::Dir(_) => self.stack.push(child),
                        Body::Symlink { target, .. } => self.expand(target, false)?,
                        Body::File(_) => return Err(FsError::NotDirectory),
                    }
                }
            }
        }
    }

    /// Walks the whole path; `follow` says whether a symlink in the last
    /// component is followed (a trailing slash always follows).
    fn resolve(mut self, follow: bool) -> Result<Arc<Inode>, FsError> {
        loop {
            let node = match self.next_last()? {
                Component::Current => Arc::clone(self.top()),
                Component::Parent => {
                    self.climb()?;
                    Arc::clone(self.top())
                }
                Component::Name(name) => {
                    let child = lookup(self.top(), &name)?;
                    if let Some(target) = child.symlink_target()
                        && (follow || self.must_be_dir)
                    {
                        self.expand(target, true)?;
                        continue;
                    }
                    child
                }
            };
            if self.must_be_dir && !node.is_dir() {
                return Err(FsError::NotDirectory);
            }
            return Ok(node);
        }
    }

    /// Walks to the last component, which must be a name: `.` and `..` cannot
    /// be created, removed or renamed, and fail with `if_dot`.
    fn last_name(&mut self, if_dot: FsError) -> Result<String, FsError> {
        let last = self.next_last()?;
        self.name_of(last, if_dot)
    }

    /// The name in `last` (the component `next_last` returned), or `if_dot`.
    fn name_of(&mut self, last: Component, if_dot: FsError) -> Result<String, FsError> {
        match last {
            Component::Name(name) => Ok(name),
            Component::Current => Err(if_dot),
            Component::Parent => {
                self.climb()?;
                Err(if_dot)
            }
        }
    }
}

/// An open directory of a `MemFs`.
#[derive(Clone)]
pub(super) struct MemDir {
    fs: MemFs,
    dir: Arc<Inode>,
}

/// What `MemDir::open_at` opened.
pub(super) enum MemNode {
    Dir(MemDir),
    File(MemFile),
}

impl MemDir {
    fn accounts(&self) -> &Arc<Accounts> {
        &self.dir.accounts
    }

    fn walk(&self, path: &str) -> Result<Walker, FsError> {
        Walker::new(&self.dir, path)
    }

    /// Whether both handles belong to the same tree.
    pub(super) fn same_fs(&self, other: &MemDir) -> bool {
        Arc::ptr_eq(&self.fs.shared, &other.fs.shared)
    }

    /// The directory's identity as `(device, inode)`.
    pub(super) fn identity(&self) -> (u64, u64) {
        (self.accounts().device, self.dir.ino)
    }

    pub(super) fn stat(&self) -> Metadata {
        self.dir.metadata()
    }

    pub(super) fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) {
        let now = SystemTime::now();
        self.dir
            .update_attrs(|attrs| attrs.set_times(atime, mtime, now));
    }

    /// The caller has checked `path` (`path::check`).
    pub(super) fn stat_at(&self, path: &str, follow: bool) -> Result<Metadata, FsError> {
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

    pub(super) fn set_times_at(
        &self,
        path: &str,
        follow: bool,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<(), FsError> {
        let node = self.walk(path)?.resolve(follow)?;
        let now = SystemTime::now();
        node.update_attrs(|attrs| attrs.set_times(atime, mtime, now));
        Ok(())
    }

    pub(super) fn read_dir(&self) -> Vec<DirEntry> {
        read(&self.dir.dir().state)
            .entries
            .iter()
            .map(|(name, inode)| DirEntry {
                name: name.clone(),
                kind: inode.kind(),
            })
            .collect()
    }

    pub(super) fn readlink_at(&self, path: &str) -> Result<String, FsError> {
        let node = self.walk(path)?.resolve(false)?;
        node.symlink_target()
            .map(str::to_owned)
            .ok_or(FsError::Invalid)
    }

    /// Opens (and perhaps creates) a file or directory. The caller has
    /// checked the combination of options and the mount's permissions.
    pub(super) fn open_at(&self, path: &str, options: &OpenOptions) -> Result<MemNode, FsError> {
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
                            return Err(FsError::Loop);
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

    pub(super) fn create_dir_at(&self, path: &str) -> Result<(), FsError> {
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

    pub(super) fn remove_dir_at(&self, path: &str) -> Result<(), FsError> {
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

    pub(super) fn unlink_file_at(&self, path: &str) -> Result<(), FsError> {
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

    pub(super) fn symlink_at(&self, target: &str, path: &str) -> Result<(), FsError> {
        path::parse(target)?;
        self.insert_symlink(target, path)
    }

    /// Creates a symlink without checking its target: seeding copies host
    /// links as they are, absolute ones included (they are never followed).
    pub(super) fn insert_symlink(&self, target: &str, path: &str) -> Result<(), FsError> {
        let mut walk = self.walk(path)?;
        let name = walk.last_name(FsError::Exist)?;
        let mut state = write(&walk.top().dir().state);
        if state.entries.contains_key(&name) {
            return Err(FsError::Exist);
        }
        if walk.must_be_dir {
            return Err(FsError::NoEntry);
        }
        state.check_linked()?;
        let now = SystemTime::now();
        let link = Inode::new_symlink(self.accounts(), target, now)?;
        state.entries.insert(name, link);
        state.attrs.modified(now);
        Ok(())
    }

    /// Adds the name `new` (from `new_dir`) for the non-directory `old`.
    /// The caller has checked that both handles are in one mount.
    pub(super) fn link_at(&self, old: &str, new_dir: &MemDir, new: &str) -> Result<(), FsError> {
        let source = self.walk(old)?.resolve(false)?;
        let mut walk = new_dir.walk(new)?;
        let name = walk.last_name(FsError::Exist)?;
        let mut state = write(&walk.top().dir().state);
        if state.entries.contains_key(&name) {
            return Err(FsError::Exist);
        }
        if walk.must_be_dir {
            return Err(FsError::NoEntry);
        }
        state.check_linked()?;
        // Linux checks the new name before refusing a directory.
        if source.is_dir() {
            return Err(FsError::NotPermitted);
        }
        let now = SystemTime::now();
        let unlinked = source.update_attrs(|attrs| {
            if attrs.nlink == 0 {
                return true;
            }
            attrs.nlink += 1;
            attrs.ctime = now;
            false
        });
        if unlinked {
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
    pub(super) fn rename_at(&self, old: &str, new_dir: &MemDir, new: &str) -> Result<(), FsError> {
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

/// An open regular file of a `MemFs`.
#[derive(Clone)]
pub(super) struct MemFile {
    inode: Arc<Inode>,
}

impl MemFile {
    fn state(&self) -> &RwLock<FileState> {
        match &self.inode.body {
            Body::File(state) => state,
            _ => unreachable!("a MemFile always holds a regular file"),
        }
    }

    /// The file's identity as `(device, inode)`.
    pub(super) fn identity(&self) -> (u64, u64) {
        (self.inode.accounts.device, self.inode.ino)
    }

    pub(super) fn stat(&self) -> Metadata {
        self.inode.metadata()
    }

    pub(super) fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) {
        let now = SystemTime::now();
        write(self.state()).attrs.set_times(atime, mtime, now);
    }

    /// Up to `len` bytes from `offset`: fewer at the end, none past it.
    pub(super) fn read_at(&self, offset: u64, len: u64) -> Vec<u8> {
        let state = read(self.state());
        let size = state.data.len() as u64;
        let start = offset.min(size);
        let end = offset.saturating_add(len).min(size);
        state.data[start as usize..end as usize].to_vec()
    }

    /// Writes `data` at `offset`, filling any gap before it with zeros.
    pub(super) fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        let mut state = write(self.state());
        self.write_locked(&mut state, offset, data)
    }

    /// Writes `data` at the end of the file in one step: concurrent appends
    /// never interleave or overwrite each other.
    pub(super) fn append(&self, data: &[u8]) -> Result<usize, FsError> {
        let mut state = write(self.state());
        let end = state.data.len() as u64;
        self.write_locked(&mut state, end, data)
    }

    pub(super) fn set_size(&self, size: u64) -> Result<(), FsError> {
        let mut state = write(self.state());
        self.resize(&mut state, size)?;
        state.attrs.modified(SystemTime::now());
        Ok(())
    }

    fn write_locked(
        &self,
        state: &mut FileState,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, FsError> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::FileTooLarge)?;
        if end > state.data.len() as u64 {
            self.resize(state, end)?;
        }
        state.data[offset as usize..end as usize].copy_from_slice(data);
        state.attrs.modified(SystemTime::now());
        Ok(data.len())
    }

    /// Grows (with zeros) or shrinks the contents; quota and memory are
    /// secured before anything changes, so a failure leaves the file as it was.
    fn resize(&self, state: &mut FileState, size: u64) -> Result<(), FsError> {
        let accounts = &self.inode.accounts;
        let old = state.data.len();
        let new = usize::try_from(size)
            .ok()
            .filter(|&size| size <= isize::MAX as usize)
            .ok_or(FsError::FileTooLarge)?;
        if new > old {
            let grow = (new - old) as u64;
            accounts.reserve_bytes(grow)?;
            if state.data.try_reserve(new - old).is_err() {
                accounts.release_bytes(grow);
                return Err(FsError::InsufficientSpace);
            }
            state.data.resize(new, 0);
        } else {
            state.data.truncate(new);
            if state.data.capacity() > 2 * new {
                state.data.shrink_to_fit();
            }
            accounts.release_bytes((old - new) as u64);
        }
        Ok(())
    }
}
