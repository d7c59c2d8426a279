//! Mounts: what a worker's guest paths lead to.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::error::FsError;
use super::handle::{DirHandle, MountRef, Node};
use super::host::HostDir;
use super::tree::MemFs;
use super::types::OpenOptions;
use crate::ledger::Ledger;

/// One directory made available to a worker: a `MemFs` (or a subtree of
/// it) or a host directory, read-only or read-write. It becomes one WASI
/// preopen, and nothing below it leads outside it.
#[derive(Clone)]
pub struct Mount {
    root: DirHandle,
}

impl Mount {
    /// Mounts the directory at `subtree` of `fs` ("/" or "" for the whole
    /// tree). Symlinks on the way are followed; the directory must exist.
    pub fn mem(fs: &MemFs, subtree: &str, read_only: bool) -> Result<Mount, FsError> {
        let mount = new_mount_ref(read_only);
        let root = DirHandle::mem(fs.root_dir(), mount);
        let relative = subtree.trim_start_matches('/');
        if relative.is_empty() {
            return Ok(Mount { root });
        }
        let options = OpenOptions {
            follow_symlinks: true,
            directory: true,
            read: true,
            ..OpenOptions::default()
        };
        match root.open_at(relative, options)? {
            Node::Dir(root) => Ok(Mount { root }),
            Node::File(_) => Err(FsError::NotDirectory),
        }
    }

    /// Mounts an already opened host directory.
    pub fn host(dir: Dir, read_only: bool) -> Mount {
        Mount {
            root: DirHandle::host(HostDir::new(dir), new_mount_ref(read_only)),
        }
    }

    /// Opens the host directory at `path` (with the host's ambient
    /// authority: this is configuration, not a guest request) and mounts it.
    pub fn host_path(path: &Path, read_only: bool) -> io::Result<Mount> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(Mount::host(dir, read_only))
    }

    /// This mount charged to a worker's `ledger`: a host directory's own
    /// descriptor and every one opened through it count against the
    /// worker's limit of host descriptors. `TooManyOpenFiles` if the ledger
    /// cannot take the root's.
    pub fn charged_to(self, ledger: &Arc<Ledger>) -> Result<Mount, FsError> {
        Ok(Mount {
            root: self.root.charged_to(ledger)?,
        })
    }

    /// A handle on the mount's root directory: what the preopen gives the guest.
    pub fn root(&self) -> DirHandle {
        self.root.clone()
    }

    /// Whether every mutation through this mount fails with `ReadOnly`.
    pub fn is_read_only(&self) -> bool {
        self.root.is_read_only()
    }
}

fn new_mount_ref(read_only: bool) -> MountRef {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    MountRef {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        read_only,
    }
}

/// A worker's mounts, each at a guest path, in the order they become
/// preopens. Guest libc resolves a path through the mount with the longest
/// matching prefix, so "/" and "/data" may both be present.
#[derive(Clone, Default)]
pub struct MountTable {
    mounts: Vec<(String, Mount)>,
}

impl MountTable {
    /// An empty table: the worker sees no files at all.
    pub fn new() -> MountTable {
        MountTable::default()
    }

    /// Adds `mount` at `guest_path`, which must be absolute and normal ("/",
    /// "/data", never "/a/", "/a/../b" or "/./a": `Invalid`) and not already
    /// taken (`Exist`).
    pub fn add(&mut self, guest_path: &str, mount: Mount) -> Result<(), FsError> {
        let normal = guest_path == "/"
            || (guest_path.starts_with('/')
                && guest_path[1..]
                    .split('/')
                    .all(|part| !matches!(part, "" | "." | "..") && !part.contains('\0')));
        if !normal {
            return Err(FsError::Invalid);
        }
        if self.mounts.iter().any(|(path, _)| path == guest_path) {
            return Err(FsError::Exist);
        }
        self.mounts.push((guest_path.to_owned(), mount));
        Ok(())
    }

    /// The mounts with their guest paths, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Mount)> {
        self.mounts
            .iter()
            .map(|(path, mount)| (path.as_str(), mount))
    }

    /// The preopens to give the guest: each mount's root with its guest path.
    pub fn preopens(&self) -> Vec<(String, DirHandle)> {
        self.mounts
            .iter()
            .map(|(path, mount)| (path.clone(), mount.root()))
            .collect()
    }

    /// How many mounts there are.
    pub fn len(&self) -> usize {
        self.mounts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }
}
