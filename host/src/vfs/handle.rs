//! Handles: open directories and files of either backend, with the rules
//! that do not depend on the backend (read-only mounts, open flags,
//! cross-mount operations) enforced here once.

use std::sync::Arc;

use super::backend::Backend;
use super::error::FsError;
use super::host::{HostDir, HostFile, HostNode};
use super::path;
use super::tree::{ByteBudget, ByteCharge, MemDir, MemFile, MemNode};
use super::types::{DirEntry, Metadata, MetadataHash, NewTimes, OpenOptions};
use crate::ledger::Ledger;

/// The most one `FileHandle::read_at` returns, so that a guest asking for
/// more than it could use cannot make the host allocate it all at once.
const MAX_READ_LEN: u64 = 16 << 20;

/// Which mount a handle belongs to, and what that mount allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MountRef {
    /// Unique per `Mount`; renames and links between different ones fail with `CrossDevice`.
    pub(super) id: u64,
    pub(super) read_only: bool,
}

impl MountRef {
    fn check_writable(self) -> Result<(), FsError> {
        if self.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn check_same(self, other: MountRef) -> Result<(), FsError> {
        if self.id == other.id {
            Ok(())
        } else {
            Err(FsError::CrossDevice)
        }
    }
}

/// An open directory of some mount. Cheap to clone; clones are the same
/// open directory.
///
/// Every `*_at` method takes a path relative to this directory. Such a path
/// reaches only what lies below the directory: an absolute path, a `..` that
/// climbs above it and a symlink that leads out (or has an absolute target)
/// all fail with `NotPermitted`. Paths are checked before permissions, so an
/// escape is `NotPermitted` even in a read-only mount, where every mutation
/// is `ReadOnly`.
#[derive(Clone)]
pub struct DirHandle {
    backend: DirBackend,
    mount: MountRef,
}

type DirBackend = Backend<MemDir, HostDir>;

/// Names an in-memory directory's listing reads at a time: small enough
/// that many open listings hold little, large enough that one lock per
/// batch costs nothing next to the calls that return the names.
const LISTING_BATCH: usize = 64;

/// A directory's entries in name order, from [`DirHandle::list`]. An
/// in-memory directory is read batch by batch, so names created or removed
/// meanwhile may or may not show up, as with POSIX `readdir`.
pub struct DirListing {
    batch: std::vec::IntoIter<DirEntry>,
    /// Where to read the next batch, while there may be one.
    more: Option<MoreEntries>,
    /// A host directory's listing, read whole, charged to its worker.
    _charge: Option<ByteCharge>,
}

struct MoreEntries {
    dir: MemDir,
    /// The last name returned so far.
    after: Option<String>,
}

impl Iterator for DirListing {
    type Item = DirEntry;

    fn next(&mut self) -> Option<DirEntry> {
        if let Some(entry) = self.batch.next() {
            return Some(entry);
        }
        let more = self.more.as_mut()?;
        let batch = more
            .dir
            .read_dir_after(more.after.as_deref(), LISTING_BATCH);
        if batch.len() < LISTING_BATCH {
            self.more = None;
        } else {
            more.after = batch.last().map(|entry| entry.name.clone());
        }
        self.batch = batch.into_iter();
        self.batch.next()
    }
}

/// An open regular file of some mount. Cheap to clone; clones share the
/// open file, so the WASI binding can hand one to each stream.
#[derive(Clone)]
pub struct FileHandle {
    backend: FileBackend,
    mount: MountRef,
    read: bool,
    write: bool,
    append: bool,
}

type FileBackend = Backend<MemFile, HostFile>;

/// What `DirHandle::open_at` opened.
#[derive(Clone)]
pub enum Node {
    /// A directory.
    Dir(DirHandle),
    /// A regular file.
    File(FileHandle),
}

/// Calls the same method on whichever backend holds a directory handle's
/// directory.
macro_rules! on_dir {
    ($handle:expr, |$dir:ident| $call:expr) => {
        match &$handle.backend {
            DirBackend::Mem($dir) => $call,
            DirBackend::Host($dir) => $call,
        }
    };
}

/// Calls the same method on the backends of two directory handles, when
/// both are on one filesystem (`CrossDevice` otherwise).
macro_rules! on_dir_pair {
    ($handle:expr, $other:expr, |$dir:ident, $to:ident| $call:expr) => {
        match (&$handle.backend, &$other.backend) {
            (DirBackend::Mem($dir), DirBackend::Mem($to)) if $dir.same_fs($to) => $call,
            (DirBackend::Host($dir), DirBackend::Host($to)) => $call,
            _ => Err(FsError::CrossDevice),
        }
    };
}

/// What directory and file handles both answer, the same way: metadata,
/// times, sync and identity, from their backend (a writable mount is
/// needed to change times).
macro_rules! node_methods {
    ($handle:ident, $what:literal) => {
        #[doc = concat!("Metadata of this ", $what, " (still valid after it was unlinked).")]
        pub fn stat(&self) -> Result<Metadata, FsError> {
            self.backend.stat()
        }

        #[doc = concat!("The identity-and-version hash of this ", $what, ".")]
        pub fn metadata_hash(&self) -> Result<MetadataHash, FsError> {
            Ok(MetadataHash::of(&self.stat()?))
        }

        #[doc = concat!("Sets this ", $what, "'s access and modification times.")]
        pub fn set_times(&self, times: NewTimes) -> Result<(), FsError> {
            self.mount.check_writable()?;
            self.backend.set_times(times)
        }

        /// Flushes data and metadata to stable storage (nothing to do in memory).
        pub fn sync(&self) -> Result<(), FsError> {
            self.backend.sync()
        }

        /// Flushes data to stable storage (nothing to do in memory).
        pub fn sync_data(&self) -> Result<(), FsError> {
            self.backend.sync_data()
        }

        #[doc = concat!("Whether both handles refer to the same ", $what, " (through any of its names).")]
        pub fn is_same_object(&self, other: &$handle) -> bool {
            same_identity(self.backend.identity(), other.backend.identity())
        }
    };
}

impl DirHandle {
    /// Checks a path that a call is about to change: well formed, and on a
    /// writable mount.
    fn writable(&self, path: &str) -> Result<(), FsError> {
        path::check(path)?;
        self.mount.check_writable()
    }

    /// Checks the two paths of a call that changes names in two
    /// directories: well formed, on one writable mount.
    fn writable_pair(&self, old: &str, new_dir: &DirHandle, new: &str) -> Result<(), FsError> {
        path::check(old)?;
        path::check(new)?;
        self.mount.check_same(new_dir.mount)?;
        self.mount.check_writable()
    }

    pub(super) fn mem(dir: MemDir, mount: MountRef) -> DirHandle {
        DirHandle {
            backend: DirBackend::Mem(dir),
            mount,
        }
    }

    pub(super) fn host(dir: HostDir, mount: MountRef) -> DirHandle {
        DirHandle {
            backend: DirBackend::Host(dir),
            mount,
        }
    }

    /// This directory with its host descriptor, and every descriptor
    /// opened through it, charged to `ledger`; a tree directory holds none.
    pub(super) fn charged_to(self, ledger: &Arc<Ledger>) -> Result<DirHandle, FsError> {
        Ok(match self.backend {
            DirBackend::Host(dir) => DirHandle::host(dir.charged_to(ledger)?, self.mount),
            DirBackend::Mem(_) => self,
        })
    }

    /// Whether the mount this directory belongs to is read-only.
    pub fn is_read_only(&self) -> bool {
        self.mount.read_only
    }

    /// Opens (or, with `create`, creates) the file or directory at `path`.
    ///
    /// Errors beyond the path rules: `Invalid` for `directory` with `create`
    /// (as Linux since 6.4; with `truncate` the path is looked up as on
    /// Linux: a directory is `IsDirectory`, a file `NotDirectory`, nothing
    /// `NoEntry`; `exclusive` without `create` means nothing); `ReadOnly` for `write`, `append`, `create`
    /// or `truncate` in a read-only mount; `Exist` for `create` + `exclusive`
    /// on a taken name (a symlink included); `Loop` for a symlink in the last
    /// component without `follow_symlinks`; `IsDirectory` when a directory is
    /// opened to be written, created or truncated, or when "name/" would be
    /// created as a file; `NotDirectory` for `directory` on anything else;
    /// `Unsupported` for host devices, FIFOs and sockets.
    pub fn open_at(&self, path: &str, options: OpenOptions) -> Result<Node, FsError> {
        path::check(path)?;
        if options.directory && options.create {
            return Err(FsError::Invalid);
        }
        if options.write || options.append || options.create || options.truncate {
            self.mount.check_writable()?;
        }
        let mount = self.mount;
        let file = |backend| {
            Node::File(FileHandle {
                backend,
                mount,
                read: options.read,
                write: options.write,
                append: options.append,
            })
        };
        Ok(match &self.backend {
            DirBackend::Mem(dir) => match dir.open_at(path, &options)? {
                MemNode::Dir(dir) => Node::Dir(DirHandle::mem(dir, mount)),
                MemNode::File(inner) => file(FileBackend::Mem(inner)),
            },
            DirBackend::Host(dir) => match dir.open_at(path, &options)? {
                HostNode::Dir(dir) => Node::Dir(DirHandle::host(dir, mount)),
                HostNode::File(inner) => file(FileBackend::Host(inner)),
            },
        })
    }

    /// Metadata of what `path` names, following a final symlink if `follow`.
    pub fn stat_at(&self, path: &str, follow: bool) -> Result<Metadata, FsError> {
        path::check(path)?;
        on_dir!(self, |dir| dir.stat_at(path, follow))
    }

    /// The identity-and-version hash of what `path` names.
    pub fn metadata_hash_at(&self, path: &str, follow: bool) -> Result<MetadataHash, FsError> {
        Ok(MetadataHash::of(&self.stat_at(path, follow)?))
    }

    /// Sets the access and modification times of what `path` names.
    pub fn set_times_at(&self, path: &str, follow: bool, times: NewTimes) -> Result<(), FsError> {
        self.writable(path)?;
        on_dir!(self, |dir| dir.set_times_at(path, follow, times))
    }

    /// Creates a directory. `Exist` if the name is taken (by anything,
    /// a dangling symlink included); "name/" is allowed.
    pub fn create_dir_at(&self, path: &str) -> Result<(), FsError> {
        self.writable(path)?;
        on_dir!(self, |dir| dir.create_dir_at(path))
    }

    /// Removes an empty directory: `NotEmpty` if it has entries,
    /// `NotDirectory` for anything else (a symlink to a directory included),
    /// `Invalid` for a path ending in `.`.
    pub fn remove_dir_at(&self, path: &str) -> Result<(), FsError> {
        self.writable(path)?;
        on_dir!(self, |dir| dir.remove_dir_at(path))
    }

    /// Removes a name of a file or symlink (never following it): `IsDirectory`
    /// for a directory, `NotDirectory` for "name/" on anything else.
    pub fn unlink_file_at(&self, path: &str) -> Result<(), FsError> {
        self.writable(path)?;
        on_dir!(self, |dir| dir.unlink_file_at(path))
    }

    /// Atomically moves `old` (below `self`) to `new` (below `new_dir`),
    /// replacing what `new` names if the kinds allow it.
    ///
    /// `CrossDevice` between different mounts; `Busy` for `.` or `..`;
    /// `Invalid` for moving a directory into itself or below it; `NotEmpty`
    /// for a directory onto a non-empty one; `NotDirectory` for a directory
    /// onto a non-directory (or "name/" on a non-directory); `IsDirectory`
    /// for a non-directory onto a directory. Two names of one file: nothing
    /// happens.
    pub fn rename_at(&self, old: &str, new_dir: &DirHandle, new: &str) -> Result<(), FsError> {
        self.writable_pair(old, new_dir, new)?;
        on_dir_pair!(self, new_dir, |dir, to| dir.rename_at(old, to, new))
    }

    /// Adds the name `new` (below `new_dir`) for the file or symlink `old`
    /// (never followed). `NotPermitted` for a directory, `Exist` if `new`
    /// is taken, `CrossDevice` between different mounts.
    pub fn link_at(&self, old: &str, new_dir: &DirHandle, new: &str) -> Result<(), FsError> {
        self.writable_pair(old, new_dir, new)?;
        on_dir_pair!(self, new_dir, |dir, to| dir.link_at(old, to, new))
    }

    /// Creates a symlink at `path` whose target is the text `target`.
    /// `NotPermitted` for an absolute target, `NoEntry` for an empty one.
    pub fn symlink_at(&self, target: &str, path: &str) -> Result<(), FsError> {
        self.writable(path)?;
        on_dir!(self, |dir| dir.symlink_at(target, path))
    }

    /// The target text of the symlink at `path`; `Invalid` if it is not one.
    pub fn readlink_at(&self, path: &str) -> Result<String, FsError> {
        path::check(path)?;
        on_dir!(self, |dir| dir.readlink_at(path))
    }

    /// The entries of this directory, sorted by name, without `.` and `..`.
    pub fn read_dir(&self) -> Result<Vec<DirEntry>, FsError> {
        match &self.backend {
            DirBackend::Mem(dir) => Ok(dir.read_dir()),
            DirBackend::Host(dir) => dir.read_dir(),
        }
    }

    /// The entries of this directory as [`read_dir`](Self::read_dir) gives
    /// them, read as they are asked for: an in-memory directory's listing
    /// holds one batch of names at a time rather than a copy of them all.
    /// A host directory is read whole (the host gives no order to resume
    /// from), and what its names hold is charged to `bytes` while the
    /// listing lives: `InsufficientMemory` past its cap, so a worker cannot
    /// hold a large directory's names many times over.
    pub fn list(&self, bytes: &Arc<ByteBudget>) -> Result<DirListing, FsError> {
        Ok(match &self.backend {
            DirBackend::Mem(dir) => DirListing {
                batch: Vec::new().into_iter(),
                more: Some(MoreEntries {
                    dir: dir.clone(),
                    after: None,
                }),
                _charge: None,
            },
            DirBackend::Host(dir) => {
                let entries = dir.read_dir()?;
                let held: u64 = entries
                    .iter()
                    .map(|entry| (entry.name.len() + size_of::<DirEntry>()) as u64)
                    .sum();
                let charge = ByteCharge::take(bytes, held).ok_or(FsError::InsufficientMemory)?;
                DirListing {
                    batch: entries.into_iter(),
                    more: None,
                    _charge: Some(charge),
                }
            }
        })
    }

    node_methods!(DirHandle, "directory");
}

impl FileHandle {
    /// Whether this handle may read.
    pub fn can_read(&self) -> bool {
        self.read
    }

    /// Whether this handle may write (with `write` or `append`).
    pub fn can_write(&self) -> bool {
        self.write || self.append
    }

    /// Whether every write through this handle goes to the end.
    pub fn is_append(&self) -> bool {
        self.append
    }

    /// Up to `len` bytes from `offset`: fewer at the end of the file, none
    /// past it, and at most 16 MiB per call (callers loop as on any short
    /// read). `BadDescriptor` unless opened to read.
    pub fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
        if !self.read {
            return Err(FsError::BadDescriptor);
        }
        let len = len.min(MAX_READ_LEN);
        match &self.backend {
            FileBackend::Mem(file) => Ok(file.read_at(offset, len)),
            FileBackend::Host(file) => file.read_at(offset, len),
        }
    }

    /// Writes `data` at `offset` (at the end if opened with `append`),
    /// filling a gap before `offset` with zeros; returns the bytes written.
    /// `BadDescriptor` unless opened to write; `InsufficientSpace` past a
    /// quota, leaving the file as it was.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        if self.append {
            return self.append(data);
        }
        self.check_writable()?;
        match &self.backend {
            FileBackend::Mem(file) => file.write_at(offset, data),
            FileBackend::Host(file) => file.write_at(offset, data),
        }
    }

    /// Writes `data` at the current end of the file, atomically with respect
    /// to every other append; returns the bytes written.
    pub fn append(&self, data: &[u8]) -> Result<usize, FsError> {
        self.check_writable()?;
        match &self.backend {
            FileBackend::Mem(file) => file.append(data),
            FileBackend::Host(file) => file.append(data),
        }
    }

    /// Truncates or extends (with zeros) the file to `size` bytes;
    /// `Invalid` if it is not open for writing (Linux's `ftruncate`).
    pub fn set_size(&self, size: u64) -> Result<(), FsError> {
        if !self.can_write() {
            return Err(FsError::Invalid);
        }
        match &self.backend {
            FileBackend::Mem(file) => file.set_size(size),
            FileBackend::Host(file) => file.set_size(size),
        }
    }

    fn check_writable(&self) -> Result<(), FsError> {
        if self.can_write() {
            Ok(())
        } else {
            // WASI's code for a descriptor without the needed access.
            Err(FsError::BadDescriptor)
        }
    }

    node_methods!(FileHandle, "file");
}

impl Node {
    /// Metadata of the directory or file.
    pub fn stat(&self) -> Result<Metadata, FsError> {
        match self {
            Node::Dir(dir) => dir.stat(),
            Node::File(file) => file.stat(),
        }
    }

    /// The identity-and-version hash of the directory or file.
    pub fn metadata_hash(&self) -> Result<MetadataHash, FsError> {
        Ok(MetadataHash::of(&self.stat()?))
    }

    /// Sets the access and modification times of the directory or file.
    pub fn set_times(&self, times: NewTimes) -> Result<(), FsError> {
        match self {
            Node::Dir(dir) => dir.set_times(times),
            Node::File(file) => file.set_times(times),
        }
    }

    /// Flushes the directory or file to stable storage.
    pub fn sync(&self) -> Result<(), FsError> {
        match self {
            Node::Dir(dir) => dir.sync(),
            Node::File(file) => file.sync(),
        }
    }

    /// Flushes the directory's or file's data to stable storage.
    pub fn sync_data(&self) -> Result<(), FsError> {
        match self {
            Node::Dir(dir) => dir.sync_data(),
            Node::File(file) => file.sync_data(),
        }
    }

    /// Whether both refer to the same object.
    pub fn is_same_object(&self, other: &Node) -> bool {
        same_identity(self.identity(), other.identity())
    }

    fn identity(&self) -> Option<(u64, u64)> {
        match self {
            Node::Dir(dir) => dir.backend.identity(),
            Node::File(file) => file.backend.identity(),
        }
    }
}

/// Two identities match only if both are known and equal.
fn same_identity(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> bool {
    a.is_some() && a == b
}
