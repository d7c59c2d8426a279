//! The host-directory backend: the same operations as the tree, on a real
//! directory through cap-std, which keeps every path, `..` and symlink
//! inside the directory it starts from (escapes fail with `NotPermitted`).
//!
//! A mount charged to a worker's [`Ledger`] charges every descriptor it
//! opens (its root included) to that worker until the last handle on it is
//! dropped; past the worker's limit or the host's pool, opens fail with
//! `TooManyOpenFiles`. The short-lived descriptors of a listing or a
//! directory sync are the host's reserve's.

use std::fs::{File, FileTimes};
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_fs_ext::{OpenOptionsSyncExt, SystemTimeSpec};
use cap_std::fs::{Dir, FileTypeExt, MetadataExt};

use super::backend::HostObject;
use super::error::FsError;
use super::path::{self, Component, RelativePath};
use super::types::{DirEntry, FileKind, Metadata, NewTimes, NewTimestamp, OpenOptions};
use crate::ledger::{Kind, Ledger, Token};

/// A host descriptor and what holding it costs the worker that opened it:
/// the token is given back only when the descriptor is closed, after the
/// last handle sharing it is gone.
struct Charged<T> {
    fd: T,
    _charge: Option<Token>,
}

impl<T> Charged<T> {
    fn free(fd: T) -> Arc<Charged<T>> {
        Arc::new(Charged { fd, _charge: None })
    }
}

impl<T> Deref for Charged<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.fd
    }
}

/// An open directory on the host.
#[derive(Clone)]
pub(super) struct HostDir {
    dir: Arc<Charged<Dir>>,
    /// The worker that what this directory opens is charged to; `None` for
    /// the host's own use (seeding and saving trees).
    ledger: Option<Arc<Ledger>>,
}

/// What `HostDir::open_at` opened.
pub(super) enum HostNode {
    Dir(HostDir),
    File(HostFile),
}

impl HostObject for HostDir {
    fn stat(&self) -> Result<Metadata, FsError> {
        Ok(cap_metadata(&self.dir.dir_metadata()?))
    }

    fn set_times(&self, times: NewTimes) -> Result<(), FsError> {
        self.set_times_at(".", false, times)
    }

    fn sync(&self) -> Result<(), FsError> {
        Ok(self.as_file()?.sync_all()?)
    }

    fn sync_data(&self) -> Result<(), FsError> {
        Ok(self.as_file()?.sync_data()?)
    }
}

impl HostDir {
    pub(super) fn new(dir: Dir) -> HostDir {
        HostDir {
            dir: Charged::free(dir),
            ledger: None,
        }
    }

    /// This directory, its own descriptor and everything opened through it
    /// charged to `ledger`. `TooManyOpenFiles` if the ledger refuses.
    pub(super) fn charged_to(self, ledger: &Arc<Ledger>) -> Result<HostDir, FsError> {
        let charge = Some(charge(ledger)?);
        let dir = match Arc::try_unwrap(self.dir) {
            Ok(unique) => unique.fd,
            // Shared with an uncharged mount: a descriptor of its own.
            Err(shared) => shared.fd.try_clone()?,
        };
        Ok(HostDir {
            dir: Arc::new(Charged {
                fd: dir,
                _charge: charge,
            }),
            ledger: Some(ledger.clone()),
        })
    }

    /// The directory opened as a `File`, for the calls `Dir` lacks (its own
    /// descriptor may be an `O_PATH` one, which cannot be synced).
    fn as_file(&self) -> Result<File, FsError> {
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true).maybe_dir(true);
        Ok(self.dir.open_with(".", &options)?.into_std())
    }

    pub(super) fn stat_at(&self, path: &str, follow: bool) -> Result<Metadata, FsError> {
        // POSIX follows a symlink named with a trailing slash; cap-std does not.
        let meta = if follow || path::parse(path)?.trailing_slash {
            self.dir.metadata(path)?
        } else {
            self.dir.symlink_metadata(path)?
        };
        Ok(cap_metadata(&meta))
    }

    pub(super) fn set_times_at(
        &self,
        path: &str,
        follow: bool,
        times: NewTimes,
    ) -> Result<(), FsError> {
        let (atime, mtime) = (time_spec(times.atime), time_spec(times.mtime));
        if follow {
            self.dir.set_times(path, atime, mtime)?;
        } else {
            self.dir.set_symlink_times(path, atime, mtime)?;
        }
        Ok(())
    }

    /// The entries, sorted by name. Names that are not UTF-8 cannot be named
    /// through this API at all, so they are left out (and logged).
    pub(super) fn read_dir(&self) -> Result<Vec<DirEntry>, FsError> {
        let mut entries = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let kind = file_kind(&entry.file_type()?);
            match entry.file_name().into_string() {
                Ok(name) => entries.push(DirEntry { name, kind }),
                Err(name) => tracing::warn!(?name, "skipping a host file name that is not UTF-8"),
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    pub(super) fn readlink_at(&self, path: &str) -> Result<String, FsError> {
        // `read_link_contents` also returns absolute targets (which
        // `read_link` refuses); reading a target is harmless, following it is not.
        let target = self.dir.read_link_contents(path)?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| FsError::IllegalByteSequence)
    }

    /// Opens (and perhaps creates) a file or directory. The caller has
    /// checked the combination of options and the mount's permissions.
    pub(super) fn open_at(&self, path: &str, options: &OpenOptions) -> Result<HostNode, FsError> {
        // The descriptor needs write access whenever the call may change
        // the file; the handle's own flags decide what the guest may do.
        // With `directory`, truncation is never asked of the OS: a file
        // there must stay whole (Linux checks O_DIRECTORY before O_TRUNC).
        let truncate = options.truncate && !options.directory;
        let write = options.write || options.append || options.create || truncate;
        let mut host = cap_std::fs::OpenOptions::new();
        host.read(options.read || !write)
            .write(write)
            .create(options.create && !options.exclusive)
            .create_new(options.create && options.exclusive)
            .truncate(truncate)
            .follow(if options.follow_symlinks {
                FollowSymlinks::Yes
            } else {
                FollowSymlinks::No
            })
            .maybe_dir(true)
            // Opening a FIFO would otherwise block until a peer shows up;
            // such files are refused below anyway.
            .nonblock(true);
        let charge = self.ledger.as_ref().map(charge).transpose()?;
        let file = match self.dir.open_with(path, &host) {
            Ok(file) => file,
            // Linux checks O_DIRECTORY before O_NOFOLLOW: a final symlink
            // is "not a directory"; cap-std reports only the symlink. (A
            // trailing slash follows it, so its loop stays a loop.)
            Err(e) if options.directory && !options.follow_symlinks && !path.ends_with('/') => {
                let final_symlink = self
                    .dir
                    .symlink_metadata(path)
                    .is_ok_and(|meta| meta.is_symlink());
                return Err(if final_symlink {
                    FsError::NotDirectory
                } else {
                    e.into()
                });
            }
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        if meta.is_dir() {
            if options.truncate {
                return Err(FsError::IsDirectory);
            }
            return Ok(HostNode::Dir(HostDir {
                dir: Arc::new(Charged {
                    fd: Dir::from_std_file(file.into_std()),
                    _charge: charge,
                }),
                ledger: self.ledger.clone(),
            }));
        }
        if options.directory {
            return Err(FsError::NotDirectory);
        }
        if !meta.is_file() {
            return Err(FsError::Unsupported);
        }
        Ok(HostNode::File(HostFile {
            file: Arc::new(Charged {
                fd: file.into_std(),
                _charge: charge,
            }),
        }))
    }

    pub(super) fn create_dir_at(&self, path: &str) -> Result<(), FsError> {
        Ok(self.dir.create_dir(path)?)
    }

    pub(super) fn remove_dir_at(&self, path: &str) -> Result<(), FsError> {
        let parsed = path::parse(path)?;
        if parsed.components.last() == Some(&Component::Parent) {
            // "x/.." names x's parent, which holds x (Linux: `ENOTEMPTY`).
            self.stat_at(path, true)?;
            return Err(FsError::NotEmpty);
        }
        if parsed.trailing_slash {
            // cap-std refuses the slash; once it is known to name a
            // directory (not a symlink to one), the path means the same without it.
            self.check_dir_itself(path)?;
        }
        Ok(self.dir.remove_dir(without_trailing_slash(path))?)
    }

    pub(super) fn unlink_file_at(&self, path: &str) -> Result<(), FsError> {
        if path::parse(path)?.trailing_slash {
            if self.stat_at(without_trailing_slash(path), false)?.kind == FileKind::Directory {
                return Err(FsError::IsDirectory);
            }
            return Err(FsError::NotDirectory);
        }
        Ok(self.dir.remove_file(path)?)
    }

    pub(super) fn symlink_at(&self, target: &str, path: &str) -> Result<(), FsError> {
        path::parse(target)?;
        self.check_new_name(path)?;
        self.insert_symlink(target, path)
    }

    /// Creates a symlink without checking its target: saving a tree writes
    /// back links that were seeded from the host as they were.
    pub(super) fn insert_symlink(&self, target: &str, path: &str) -> Result<(), FsError> {
        Ok(self.dir.symlink_contents(target, path)?)
    }

    pub(super) fn link_at(&self, old: &str, new_dir: &HostDir, new: &str) -> Result<(), FsError> {
        let mut old = old.to_owned();
        if path::parse(&old)?.trailing_slash {
            // "old/" must resolve to a directory (which cannot be linked,
            // but Linux checks `new` first): "old/." makes cap-std resolve
            // it so, where it would otherwise drop the slash.
            if self.stat_at(&old, true)?.kind != FileKind::Directory {
                return Err(FsError::NotDirectory);
            }
            old.push('.');
        }
        new_dir
            .check_new_name(new)
            .and_then(|()| Ok(self.dir.hard_link(&old, &new_dir.dir, new)?))
            // Linux reports a problem with `old` before one with `new`.
            .map_err(|err| self.stat_at(&old, false).err().unwrap_or(err))
    }

    pub(super) fn rename_at(&self, old: &str, new_dir: &HostDir, new: &str) -> Result<(), FsError> {
        let (old_parsed, new_parsed) = (path::parse(old)?, path::parse(new)?);
        if old_parsed.trailing_slash || new_parsed.trailing_slash {
            // Trailing slashes require a directory (not a symlink to one);
            // once that is known, the paths mean the same without them.
            // Linux first resolves both parents and refuses `.` and `..`
            // (which cap-std does too), so those errors come first.
            self.stat_at(parent_of(old), true)?;
            new_dir.stat_at(parent_of(new), true)?;
            if ends_in_name(&old_parsed) && ends_in_name(&new_parsed) {
                self.check_dir_itself(old)?;
            }
        }
        let (old, new) = (without_trailing_slash(old), without_trailing_slash(new));
        Ok(self.dir.rename(old, &new_dir.dir, new)?)
    }

    /// Fails with `NotDirectory` unless `path`, without following a final
    /// symlink, is a directory.
    fn check_dir_itself(&self, path: &str) -> Result<(), FsError> {
        match self.stat_at(without_trailing_slash(path), false)?.kind {
            FileKind::Directory => Ok(()),
            _ => Err(FsError::NotDirectory),
        }
    }

    /// For a new link or symlink named `.`, `..` or "name/", fails the way
    /// Linux does: `Exist` if the path names something, else why not.
    fn check_new_name(&self, path: &str) -> Result<(), FsError> {
        let parsed = path::parse(path)?;
        if parsed.trailing_slash || !ends_in_name(&parsed) {
            self.stat_at(without_trailing_slash(path), false)?;
            return Err(FsError::Exist);
        }
        Ok(())
    }
}

/// One host descriptor charged to `ledger`.
fn charge(ledger: &Arc<Ledger>) -> Result<Token, FsError> {
    ledger
        .try_acquire(Kind::HostFd)
        .map_err(|_| FsError::TooManyOpenFiles)
}

/// Whether the last component is a name rather than `.` or `..`.
fn ends_in_name(path: &RelativePath) -> bool {
    matches!(path.components.last(), Some(Component::Name(_)))
}

/// The directory that holds what `path` names, with a trailing slash so
/// that it must be one ("." for a bare name).
fn parent_of(path: &str) -> &str {
    let path = without_trailing_slash(path);
    path.rfind('/').map_or(".", |slash| &path[..=slash])
}

/// `path` without the slashes at its end (`path` is relative, so something remains).
fn without_trailing_slash(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// An open regular file on the host.
#[derive(Clone)]
pub(super) struct HostFile {
    file: Arc<Charged<File>>,
}

impl HostObject for HostFile {
    fn stat(&self) -> Result<Metadata, FsError> {
        Ok(cap_metadata(&cap_std::fs::Metadata::from_file(&self.file)?))
    }

    fn set_times(&self, new: NewTimes) -> Result<(), FsError> {
        let now = SystemTime::now();
        let mut times = FileTimes::new();
        match new.atime {
            NewTimestamp::NoChange => {}
            NewTimestamp::Now => times = times.set_accessed(now),
            NewTimestamp::Timestamp(time) => times = times.set_accessed(time),
        }
        match new.mtime {
            NewTimestamp::NoChange => {}
            NewTimestamp::Now => times = times.set_modified(now),
            NewTimestamp::Timestamp(time) => times = times.set_modified(time),
        }
        Ok(self.file.set_times(times)?)
    }

    fn sync(&self) -> Result<(), FsError> {
        Ok(self.file.sync_all()?)
    }

    fn sync_data(&self) -> Result<(), FsError> {
        Ok(self.file.sync_data()?)
    }
}

impl HostFile {
    /// Up to `len` bytes from `offset`: fewer at the end, none past it.
    pub(super) fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, FsError> {
        let available = self.file.metadata()?.len().saturating_sub(offset);
        let mut buf = vec![0; len.min(available) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)?
            {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    pub(super) fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        self.file.write_all_at(data, offset)?;
        Ok(data.len())
    }

    /// Writes `data` at the end of the file in one system call, so appends
    /// from any number of handles (or processes) never interleave.
    #[cfg(target_os = "linux")]
    pub(super) fn append(&self, data: &[u8]) -> Result<usize, FsError> {
        use rustix::io::{ReadWriteFlags, pwritev2};
        let slices = [std::io::IoSlice::new(data)];
        // With RWF_APPEND the offset is ignored and the write lands at the end,
        // as with O_APPEND, without giving the whole descriptor that mode.
        Ok(pwritev2(&self.file.fd, &slices, 0, ReadWriteFlags::APPEND)
            .map_err(std::io::Error::from)?)
    }

    /// Elsewhere there is no per-call append flag; host appends are Linux-only.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn append(&self, _data: &[u8]) -> Result<usize, FsError> {
        Err(FsError::Unsupported)
    }

    pub(super) fn set_size(&self, size: u64) -> Result<(), FsError> {
        Ok(self.file.set_len(size)?)
    }
}

fn time_spec(time: NewTimestamp) -> Option<SystemTimeSpec> {
    match time {
        NewTimestamp::NoChange => None,
        NewTimestamp::Now => Some(SystemTimeSpec::SymbolicNow),
        NewTimestamp::Timestamp(time) => Some(SystemTimeSpec::Absolute(
            cap_std::time::SystemTime::from_std(time),
        )),
    }
}

fn cap_metadata(meta: &cap_std::fs::Metadata) -> Metadata {
    Metadata {
        kind: file_kind(&meta.file_type()),
        device: meta.dev(),
        inode: meta.ino(),
        nlink: meta.nlink(),
        size: meta.len(),
        atime: meta.accessed().ok().map(|time| time.into_std()),
        mtime: meta.modified().ok().map(|time| time.into_std()),
        ctime: unix_time(meta.ctime(), meta.ctime_nsec()),
    }
}

fn file_kind(file_type: &cap_std::fs::FileType) -> FileKind {
    if file_type.is_dir() {
        FileKind::Directory
    } else if file_type.is_file() {
        FileKind::RegularFile
    } else if file_type.is_symlink() {
        FileKind::SymbolicLink
    } else if file_type.is_block_device() {
        FileKind::BlockDevice
    } else if file_type.is_char_device() {
        FileKind::CharacterDevice
    } else if file_type.is_fifo() {
        FileKind::Fifo
    } else if file_type.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Unknown
    }
}

/// A `stat` time (seconds and nanoseconds around the epoch) as a `SystemTime`.
fn unix_time(secs: i64, nanos: i64) -> Option<SystemTime> {
    let since_epoch = Duration::from_secs(secs.unsigned_abs());
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(since_epoch)?
    } else {
        UNIX_EPOCH.checked_sub(since_epoch)?
    };
    time.checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
}
