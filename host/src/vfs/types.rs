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

/// The access and modification times a `set-times` call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTimes {
    /// The new access time.
    pub atime: NewTimestamp,
    /// The new modification time.
    pub mtime: NewTimestamp,
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
    ///
    /// A keyed folded multiply (as in foldhash), not SipHash: wasi-libc asks
    /// for this hash in every `stat`, where two SipHashes were about 8% of
    /// the instructions, and no hash table is built from these values.
    pub(super) fn of(meta: &Metadata) -> MetadataHash {
        static KEYS: OnceLock<[u64; 8]> = OnceLock::new();
        let k = KEYS.get_or_init(|| {
            let seed = RandomState::new();
            std::array::from_fn(|i| seed.hash_one(i))
        });
        let mtime = match meta.mtime {
            Some(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => after.as_nanos() as u64,
                Err(before) => !(before.duration().as_nanos() as u64),
            },
            None => 0,
        };
        let identity = fold_multiply(meta.device ^ k[0], meta.inode ^ k[1]);
        let version = fold_multiply(meta.size ^ k[2], mtime ^ k[3]);
        MetadataHash {
            lower: fold_multiply(identity ^ k[4], version ^ k[5]),
            upper: fold_multiply(identity ^ k[6], version ^ k[7]),
        }
    }
}

/// The two halves of the 128-bit product, xored: a fast mixer of two words.
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}
