//! Plain values that cross the backend boundary: options, metadata, entries.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::SystemTime;

/// What kind of object a path or handle refers to (WASI `descriptor-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link.
    SymbolicLink,
    /// A block device (host mounts only).
    BlockDevice,
    /// A character device (host mounts only).
    CharacterDevice,
    /// A named pipe (host mounts only).
    Fifo,
    /// A Unix socket (host mounts only).
    Socket,
    /// Anything else the host reports.
    Unknown,
}

/// What `stat` reports about a file, directory or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The kind of object.
    pub kind: FileKind,
    /// The device it lives on: the host's for host mounts, one per `MemFs`
    /// (with the top bit set, so it never equals a real one) for the tree.
    pub device: u64,
    /// Its inode number, unique on its device.
    pub inode: u64,
    /// How many directory entries name it (for a directory: 2 plus its subdirectories).
    pub nlink: u64,
    /// Bytes of a file or of a symlink's target; for a directory, backend-specific.
    pub size: u64,
    /// Last access. The tree does not update it on reads, like a `noatime` mount.
    pub atime: Option<SystemTime>,
    /// Last change of the contents.
    pub mtime: Option<SystemTime>,
    /// Last change of the contents or of the metadata (POSIX `ctime`).
    pub ctime: Option<SystemTime>,
}

/// One entry of a directory listing (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// What it names, without following symlinks.
    pub kind: FileKind,
}

/// How `open_at` resolves, creates and opens (WASI `path-flags`, `open-flags`
/// and `descriptor-flags` in one).
///
/// All fields default to `false`. `create` and `truncate` need a writable
/// mount but do not by themselves make the handle writable: the handle may
/// read if `read`, and write if `write` or `append`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Follow a symlink in the last component; without it such a link is `Loop`.
    pub follow_symlinks: bool,
    /// Create a regular file if the name is free.
    pub create: bool,
    /// With `create`: fail with `Exist` if the name is taken.
    pub exclusive: bool,
    /// Cut an existing regular file to zero bytes.
    pub truncate: bool,
    /// Fail with `NotDirectory` unless the path names a directory.
    pub directory: bool,
    /// The handle may read.
    pub read: bool,
    /// The handle may write.
    pub write: bool,
    /// The handle may write, and every write goes to the end (POSIX `O_APPEND`).
    pub append: bool,
}

/// A new value for a timestamp in `set_times` (WASI `new-timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewTimestamp {
    /// Leave it as it is.
    NoChange,
    /// The current time.
    Now,
    /// This time.
    Timestamp(SystemTime),
}

/// A 128-bit hash of an object's identity and version (WASI `metadata-hash-value`).
///
/// Equal for the same unchanged object; different once it is replaced or
/// its size or mtime change. Keyed per process, so it does not reveal inode
/// numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetadataHash {
    /// The low 64 bits.
    pub lower: u64,
    /// The high 64 bits.
    pub upper: u64,
}

impl MetadataHash {
    /// Hashes what identifies `meta`'s object and its version.
    pub(super) fn of(meta: &Metadata) -> MetadataHash {
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let (lower_key, upper_key) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        let version = (meta.device, meta.inode, meta.size, meta.mtime);
        MetadataHash {
            lower: lower_key.hash_one(version),
            upper: upper_key.hash_one(version),
        }
    }
}
