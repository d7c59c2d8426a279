//! Copying a `MemFs` from and to a host directory, so a run can start from
//! files on disk and leave its results there.
//!
//! The host side goes through the host backend (cap-std), so neither
//! direction ever follows a host symlink out of the given directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::error::FsError;
use super::host::{HostDir, HostFile, HostNode};
use super::tree::{MemDir, MemFile, MemFs, MemNode};
use super::types::{DirEntry, FileKind, Metadata, NewTimes, NewTimestamp, OpenOptions};

/// Bytes copied per step, so a large file is never held twice in memory.
const CHUNK: u64 = 1 << 20;

/// Why seeding or saving a tree failed, and at which host path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PersistError {
    /// The host file or directory being read or written.
    pub path: PathBuf,
    /// What went wrong there.
    #[source]
    pub source: FsError,
}

/// Attaches the host path to an error.
trait At<T> {
    fn at(self, path: &Path) -> Result<T, PersistError>;
}

impl<T, E: Into<FsError>> At<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, PersistError> {
        self.map_err(|source| PersistError {
            path: path.to_owned(),
            source: source.into(),
        })
    }
}

impl MemFs {
    /// Copies the host directory `host_dir` into the root of the tree:
    /// directories, regular files, symlinks (their target text as it is,
    /// absolute ones included: the tree never follows those) and the
    /// access and modification times of each.
    ///
    /// Meant for a fresh tree: a name that already exists fails with
    /// `Exist`. Quotas apply (`InsufficientSpace`). Host hard links become
    /// separate files; devices, FIFOs, sockets and names that are not UTF-8
    /// are skipped with a warning.
    pub fn seed_from(&self, host_dir: &Path) -> Result<(), PersistError> {
        let host = Dir::open_ambient_dir(host_dir, ambient_authority()).at(host_dir)?;
        seed_dir(HostDir::new(host), host_dir, self.root_dir())
    }

    /// Writes the tree into the host directory `host_dir` (created if
    /// missing): directories, files, symlinks, and their times.
    ///
    /// Each file and symlink is written to a temporary name and renamed
    /// into place, so a reader never sees it half-written. Host entries
    /// that the tree does not have are left alone; a host file or symlink
    /// where the tree has a directory is replaced by the directory; a host
    /// directory where the tree has a file or symlink is an error. Stops at
    /// the first error.
    pub fn save_to(&self, host_dir: &Path) -> Result<(), PersistError> {
        std::fs::create_dir_all(host_dir).at(host_dir)?;
        let host = Dir::open_ambient_dir(host_dir, ambient_authority()).at(host_dir)?;
        save_dir(self.root_dir(), HostDir::new(host), host_dir)
    }
}

/// A directory being copied, one per level of the walk: the walk keeps
/// them on the heap rather than recursing, since a guest can build a chain
/// of directories deeper than the host's stack.
struct Level<From, To> {
    from: From,
    to: To,
    path: PathBuf,
    entries: std::vec::IntoIter<DirEntry>,
    /// The name and metadata of this directory in the level above, whose
    /// times are set once it is filled (filling changes its mtime).
    made: Option<(String, Metadata)>,
}

/// Takes the finished level off `levels` and gives its directory the times
/// it had at the source, which filling it changed.
impl<From, To> Level<From, To> {
    fn new(
        from: From,
        to: To,
        path: PathBuf,
        entries: std::vec::IntoIter<DirEntry>,
        made: Option<(String, Metadata)>,
    ) -> Self {
        Level {
            from,
            to,
            path,
            entries,
            made,
        }
    }
}

fn finish_level<From, To>(
    levels: &mut Vec<Level<From, To>>,
    set_times: impl Fn(&To, &str, &Metadata) -> Result<(), FsError>,
) -> Result<(), PersistError> {
    let done = levels.pop().expect("the loop saw a last level");
    if let (Some((name, meta)), Some(parent)) = (done.made, levels.last()) {
        set_times(&parent.to, &name, &meta).at(&done.path)?;
    }
    Ok(())
}

fn seed_dir(host: HostDir, host_path: &Path, tree: MemDir) -> Result<(), PersistError> {
    let set_times =
        |dir: &MemDir, name: &str, meta: &Metadata| dir.set_times_at(name, false, times_of(meta));
    let entries = host.read_dir().at(host_path)?.into_iter();
    let mut levels = vec![Level::new(host, tree, host_path.to_owned(), entries, None)];
    while let Some(level) = levels.last_mut() {
        let Some(entry) = level.entries.next() else {
            finish_level(&mut levels, set_times)?;
            continue;
        };
        let (host, tree) = (&level.from, &level.to);
        let name = entry.name.as_str();
        let path = level.path.join(name);
        let meta = host.stat_at(name, false).at(&path)?;
        match meta.kind {
            FileKind::Directory => {
                tree.create_dir_at(name).at(&path)?;
                let from = open_host_dir(host, name).at(&path)?;
                let to = open_mem_dir(tree, name).at(&path)?;
                let entries = from.read_dir().at(&path)?.into_iter();
                let made = Some((entry.name, meta));
                levels.push(Level::new(from, to, path, entries, made));
                continue;
            }
            FileKind::RegularFile => {
                let HostNode::File(source) = host.open_at(name, &read_only()).at(&path)? else {
                    return Err(FsError::IsDirectory).at(&path);
                };
                let target = create_mem_file(tree, name).at(&path)?;
                copy_host_to_mem(&source, &target).at(&path)?;
            }
            FileKind::SymbolicLink => match host.readlink_at(name) {
                Ok(target) => tree.insert_symlink(&target, name).at(&path)?,
                Err(FsError::IllegalByteSequence) => {
                    tracing::warn!(path = %path.display(), "not seeding a non-UTF-8 link target");
                    continue;
                }
                Err(err) => return Err(err).at(&path),
            },
            kind => {
                tracing::warn!(path = %path.display(), ?kind, "not seeding a special file");
                continue;
            }
        }
        set_times(tree, name, &meta).at(&path)?;
    }
    Ok(())
}

fn save_dir(tree: MemDir, host: HostDir, host_path: &Path) -> Result<(), PersistError> {
    let set_times =
        |dir: &HostDir, name: &str, meta: &Metadata| dir.set_times_at(name, false, times_of(meta));
    let entries = tree.read_dir().into_iter();
    let mut levels = vec![Level::new(tree, host, host_path.to_owned(), entries, None)];
    while let Some(level) = levels.last_mut() {
        let Some(entry) = level.entries.next() else {
            finish_level(&mut levels, set_times)?;
            continue;
        };
        let (tree, host) = (&level.from, &level.to);
        let name = entry.name.as_str();
        let path = level.path.join(name);
        let meta = match tree.stat_at(name, false) {
            // Removed since the listing: nothing to save.
            Err(FsError::NoEntry) => continue,
            other => other.at(&path)?,
        };
        match meta.kind {
            FileKind::Directory => {
                make_host_dir(host, name).at(&path)?;
                let to = open_host_dir(host, name).at(&path)?;
                let from = open_mem_dir(tree, name).at(&path)?;
                let entries = from.read_dir().into_iter();
                let made = Some((entry.name, meta));
                levels.push(Level::new(from, to, path, entries, made));
                continue;
            }
            FileKind::RegularFile => {
                let MemNode::File(source) = tree.open_at(name, &read_only()).at(&path)? else {
                    return Err(FsError::IsDirectory).at(&path);
                };
                let temp = temp_name();
                let target = create_host_file(host, &temp).at(&path)?;
                copy_mem_to_host(&source, &target)
                    .and_then(|()| host.rename_at(&temp, host, name))
                    .or_else(|err| discard(host, &temp, err))
                    .at(&path)?;
            }
            FileKind::SymbolicLink => {
                let target = tree.readlink_at(name).at(&path)?;
                let temp = temp_name();
                host.insert_symlink(&target, &temp).at(&path)?;
                host.rename_at(&temp, host, name)
                    .or_else(|err| discard(host, &temp, err))
                    .at(&path)?;
            }
            kind => unreachable!("a MemFs holds no {kind:?}"),
        }
        set_times(host, name, &meta).at(&path)?;
    }
    Ok(())
}

fn read_only() -> OpenOptions {
    OpenOptions {
        read: true,
        ..OpenOptions::default()
    }
}

fn open_mem_dir(tree: &MemDir, name: &str) -> Result<MemDir, FsError> {
    let options = OpenOptions {
        directory: true,
        ..read_only()
    };
    match tree.open_at(name, &options)? {
        MemNode::Dir(dir) => Ok(dir),
        MemNode::File(_) => Err(FsError::NotDirectory),
    }
}

fn open_host_dir(host: &HostDir, name: &str) -> Result<HostDir, FsError> {
    let options = OpenOptions {
        directory: true,
        ..read_only()
    };
    match host.open_at(name, &options)? {
        HostNode::Dir(dir) => Ok(dir),
        HostNode::File(_) => Err(FsError::NotDirectory),
    }
}

/// Makes `name` a directory on the host, replacing a file or symlink there.
fn make_host_dir(host: &HostDir, name: &str) -> Result<(), FsError> {
    match host.stat_at(name, false) {
        Ok(meta) if meta.kind == FileKind::Directory => return Ok(()),
        Ok(_) => host.unlink_file_at(name)?,
        Err(FsError::NoEntry) => {}
        Err(err) => return Err(err),
    }
    host.create_dir_at(name)
}

fn create_mem_file(tree: &MemDir, name: &str) -> Result<MemFile, FsError> {
    match tree.open_at(name, &new_file())? {
        MemNode::File(file) => Ok(file),
        MemNode::Dir(_) => Err(FsError::IsDirectory),
    }
}

fn create_host_file(host: &HostDir, name: &str) -> Result<HostFile, FsError> {
    match host.open_at(name, &new_file())? {
        HostNode::File(file) => Ok(file),
        HostNode::Dir(_) => Err(FsError::IsDirectory),
    }
}

fn new_file() -> OpenOptions {
    OpenOptions {
        create: true,
        exclusive: true,
        write: true,
        ..OpenOptions::default()
    }
}

fn copy_host_to_mem(source: &HostFile, target: &MemFile) -> Result<(), FsError> {
    let mut offset = 0;
    loop {
        let chunk = source.read_at(offset, CHUNK)?;
        if chunk.is_empty() {
            return Ok(());
        }
        target.write_at(offset, &chunk)?;
        offset += chunk.len() as u64;
    }
}

fn copy_mem_to_host(source: &MemFile, target: &HostFile) -> Result<(), FsError> {
    let mut offset = 0;
    loop {
        let chunk = source.read_at(offset, CHUNK);
        if chunk.is_empty() {
            return Ok(());
        }
        target.write_at(offset, &chunk)?;
        offset += chunk.len() as u64;
    }
}

/// Removes a temporary file after a failure, keeping the first error.
fn discard(host: &HostDir, temp: &str, err: FsError) -> Result<(), FsError> {
    if let Err(cleanup) = host.unlink_file_at(temp) {
        tracing::warn!(temp, %cleanup, "could not remove a temporary file");
    }
    Err(err)
}

/// A name unlikely to clash with anything in the directory being saved.
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".corral-save-{}-{n}.tmp", std::process::id())
}

fn times_of(meta: &Metadata) -> NewTimes {
    let keep = |time: Option<_>| time.map_or(NewTimestamp::NoChange, NewTimestamp::Timestamp);
    NewTimes {
        atime: keep(meta.atime),
        mtime: keep(meta.mtime),
    }
}
