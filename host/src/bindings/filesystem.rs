//! `wasi:filesystem/{types,preopens}@0.2.12` for a worker, over the
//! [`MountTable`] in its [`VfsCtx`]: the adapter between the WASI WIT and
//! `vfs`.
//!
//! Like wasmtime-wasi's own `wasi:filesystem`, it is implemented on a narrow
//! view, [`VfsCtxView`]: the worker's mounts and its resource table, and
//! nothing else of the worker's state.
//!
//! A descriptor is a [`Node`]: an open directory or regular file of some
//! mount. Its streams (`streams.rs`) implement wasmtime-wasi's `InputStream`
//! and `OutputStream`, so wasmtime-wasi's `wasi:io/streams` drives them, and
//! their errors carry an [`FsError`] that `filesystem-error-code` recovers.
//!
//! Every descriptor and stream holds a [`Token`] of the worker's
//! [`Ledger`]: past its `max-handles`, `open-at`, `read-directory` and the
//! `*-via-stream` calls fail with `insufficient-memory` (the closest WASI
//! code to `EMFILE`), before wasmtime's own cap on a store's handles would
//! trap the worker.
//!
//! Every method is synchronous on the host. The in-memory tree never
//! waits: it holds one inode's lock for the length of a copy. A host mount
//! makes a few local system calls per method (a read is capped at 16 MiB),
//! run on the worker's own thread the way wasmtime-wasi's
//! `allow_blocking_current_thread` does, which spares a thread hop per call.
//! So streams are always ready: a read or write happens in the call that
//! asks for it.
//!
//! Rights follow the mount. A descriptor reaches only what lies below it,
//! and in a read-only mount every mutation fails with `read-only`. The
//! `mutate-directory` flag is reported by `get-flags` for every directory of
//! a writable mount, and asking for it in a read-only mount is `read-only`;
//! a directory opened without asking for it may still mutate what lies below
//! it, as under wasmtime-wasi: wasi-libc and the preview1 adapter never ask
//! for it when they open a directory, yet POSIX programs (Rust's
//! `remove_dir_all`, C's `unlinkat(dirfd(dir), ...)`) mutate through such
//! descriptors.

mod convert;
mod streams;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::generated::wasi::filesystem::{preopens, types};
use crate::ledger::{Kind, Ledger, Token};
use crate::vfs::{ByteBudget, DirHandle, DirListing, FileHandle, FsError, MountTable, Node};
use convert::{descriptor_stat, descriptor_type, follows, hash_value, new_times, open_options};
use streams::{FileReader, FileWriter};
use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Filesize,
    MetadataHashValue, NewTimestamp as WasiNewTimestamp, OpenFlags, PathFlags,
};

/// A worker's filesystem state: what `wasi:filesystem` reads besides the
/// resource table.
pub struct VfsCtx {
    /// The worker's mounts, one preopen each.
    pub mounts: MountTable,
    /// What the worker's open handles are charged to.
    pub ledger: Arc<Ledger>,
    /// What the host-side bytes the worker's calls make the host hold
    /// (host directory listings) are charged to: its memory budget.
    pub bytes: Arc<ByteBudget>,
}

/// What the filesystem binding works on: a worker's [`VfsCtx`] and the
/// resource table its descriptors and streams live in.
pub struct VfsCtxView<'a> {
    /// The worker's mounts.
    pub ctx: &'a mut VfsCtx,
    /// The worker's resource table.
    pub table: &'a mut ResourceTable,
}

/// A store's data that can lend out a [`VfsCtxView`]: what
/// [`add_to_linker`] needs of it.
pub trait VfsView: Send {
    /// The filesystem's part of the store's data.
    fn vfs(&mut self) -> VfsCtxView<'_>;
}

/// Makes [`VfsCtxView`] the data the generated `add_to_linker` functions
/// hand to the host traits.
struct Vfs;

impl HasData for Vfs {
    type Data<'a> = VfsCtxView<'a>;
}

/// Adds `wasi:filesystem/types` and `wasi:filesystem/preopens` to `linker`.
pub(crate) fn add_to_linker<T: VfsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, Vfs>(linker, T::vfs)?;
    preopens::add_to_linker::<T, Vfs>(linker, T::vfs)?;
    Ok(())
}

/// The `descriptor` resource: an open directory or file, and the handle
/// it costs the worker.
pub struct Descriptor {
    node: Node,
    _handle: Token,
}

/// The `directory-entry-stream` resource: a directory's entries, read as
/// the guest asks for them (see [`DirListing`]), so an open stream holds
/// one batch of names, not the whole listing; and the handle it costs.
pub struct DirEntryStream {
    entries: DirListing,
    _handle: Token,
}

/// A host call's result: the outer `Result` traps the worker (a bad
/// handle), the inner one is the `result<T, error-code>` the guest sees.
type Call<T> = wasmtime::Result<Result<T, ErrorCode>>;

/// Wraps a filesystem result as a host call's result.
fn reply<T>(result: Result<T, FsError>) -> Call<T> {
    Ok(result.map_err(ErrorCode::from))
}

/// The directory a `*-at` method works in; a file there is `not-directory`
/// (as wasmtime-wasi answers).
fn dir_of(node: &Node) -> Result<&DirHandle, FsError> {
    match node {
        Node::Dir(dir) => Ok(dir),
        Node::File(_) => Err(FsError::NotDirectory),
    }
}

/// The file a file-only method works on; a directory is `bad-descriptor`
/// (as wasmtime-wasi answers).
fn file_of(node: &Node) -> Result<&FileHandle, FsError> {
    match node {
        Node::File(file) => Ok(file),
        Node::Dir(_) => Err(FsError::BadDescriptor),
    }
}

impl VfsCtxView<'_> {
    /// The descriptor behind a guest handle; a stale or forged handle traps.
    fn node(&self, fd: &Resource<Descriptor>) -> wasmtime::Result<Node> {
        Ok(self.table.get(fd)?.node.clone())
    }

    /// One more open handle for the worker, or `TooManyOpenFiles` past its
    /// limit (which the ledger reports).
    fn handle(&self) -> Result<Token, FsError> {
        self.ctx
            .ledger
            .try_acquire(Kind::Handle)
            .map_err(|_| FsError::TooManyOpenFiles)
    }
}

impl preopens::Host for VfsCtxView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut preopens = Vec::with_capacity(self.ctx.mounts.len());
        for (guest_path, root) in self.ctx.mounts.preopens() {
            // `get-directories` has no error case: past the limit, the
            // worker traps (wasi-libc calls it once, at start).
            let descriptor = Descriptor {
                node: Node::Dir(root),
                _handle: self.handle()?,
            };
            preopens.push((self.table.push(descriptor)?, guest_path));
        }
        Ok(preopens)
    }
}

impl types::Host for VfsCtxView<'_> {
    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<FsError>().map(|&e| ErrorCode::from(e)))
    }
}

impl types::HostDescriptor for VfsCtxView<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> Call<Resource<DynInputStream>> {
        let file = match self.node(&fd)? {
            // POSIX: reading a directory is EISDIR.
            Node::Dir(_) => return reply(Err(FsError::IsDirectory)),
            Node::File(file) if !file.can_read() => return reply(Err(FsError::BadDescriptor)),
            Node::File(file) => file,
        };
        let handle = match self.handle() {
            Ok(handle) => handle,
            Err(err) => return reply(Err(err)),
        };
        let stream: DynInputStream = Box::new(FileReader {
            file,
            position: offset,
            _handle: handle,
        });
        Ok(Ok(self.table.push(stream)?))
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> Call<Resource<DynOutputStream>> {
        self.output_stream(fd, Some(offset))
    }

    fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> Call<Resource<DynOutputStream>> {
        self.output_stream(fd, None)
    }

    fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        _offset: Filesize,
        _length: Filesize,
        _advice: Advice,
    ) -> Call<()> {
        // Advice is only a hint, and neither backend has a use for it.
        reply(file_of(&self.node(&fd)?).map(drop))
    }

    fn sync_data(&mut self, fd: Resource<Descriptor>) -> Call<()> {
        reply(self.node(&fd)?.sync_data())
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> Call<DescriptorFlags> {
        let flags = match self.node(&fd)? {
            Node::Dir(dir) if dir.is_read_only() => DescriptorFlags::READ,
            Node::Dir(_) => DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            Node::File(file) => {
                let mut flags = DescriptorFlags::empty();
                if file.can_read() {
                    flags |= DescriptorFlags::READ;
                }
                if file.can_write() {
                    flags |= DescriptorFlags::WRITE;
                }
                flags
            }
        };
        Ok(Ok(flags))
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> Call<DescriptorType> {
        // Both backends open nothing but directories and regular files.
        Ok(Ok(match self.node(&fd)? {
            Node::Dir(_) => DescriptorType::Directory,
            Node::File(_) => DescriptorType::RegularFile,
        }))
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> Call<()> {
        // Linux's `ftruncate`: `invalid` for anything but a regular file.
        reply(match self.node(&fd)? {
            Node::File(file) => file.set_size(size),
            Node::Dir(_) => Err(FsError::Invalid),
        })
    }

    fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atime: WasiNewTimestamp,
        mtime: WasiNewTimestamp,
    ) -> Call<()> {
        let node = self.node(&fd)?;
        reply((|| node.set_times(new_times(atime, mtime)?))())
    }

    fn read(
        &mut self,
        fd: Resource<Descriptor>,
        length: Filesize,
        offset: Filesize,
    ) -> Call<(Vec<u8>, bool)> {
        let node = self.node(&fd)?;
        reply(file_of(&node).and_then(|file| {
            let data = file.read_at(offset, length)?;
            // As wasmtime-wasi: the end is reported once nothing is left.
            let end = data.is_empty();
            Ok((data, end))
        }))
    }

    fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buffer: Vec<u8>,
        offset: Filesize,
    ) -> Call<Filesize> {
        let node = self.node(&fd)?;
        reply(file_of(&node).and_then(|file| Ok(file.write_at(offset, &buffer)? as Filesize)))
    }

    fn read_directory(&mut self, fd: Resource<Descriptor>) -> Call<Resource<DirEntryStream>> {
        let node = self.node(&fd)?;
        let listed = dir_of(&node).and_then(|dir| {
            let handle = self.handle()?;
            Ok(DirEntryStream {
                entries: dir.list(&self.ctx.bytes)?,
                _handle: handle,
            })
        });
        match listed {
            Ok(stream) => Ok(Ok(self.table.push(stream)?)),
            Err(err) => reply(Err(err)),
        }
    }

    fn sync(&mut self, fd: Resource<Descriptor>) -> Call<()> {
        reply(self.node(&fd)?.sync())
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.create_dir_at(&path)))
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> Call<DescriptorStat> {
        reply(self.node(&fd)?.stat().map(descriptor_stat))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> Call<DescriptorStat> {
        let node = self.node(&fd)?;
        reply(
            dir_of(&node)
                .and_then(|dir| dir.stat_at(&path, follows(path_flags)).map(descriptor_stat)),
        )
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atime: WasiNewTimestamp,
        mtime: WasiNewTimestamp,
    ) -> Call<()> {
        let node = self.node(&fd)?;
        reply(
            dir_of(&node).and_then(|dir| {
                dir.set_times_at(&path, follows(path_flags), new_times(atime, mtime)?)
            }),
        )
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> Call<()> {
        let (old, new) = (self.node(&fd)?, self.node(&new_fd)?);
        reply((|| {
            let (old_dir, new_dir) = (dir_of(&old)?, dir_of(&new)?);
            // The backends never follow `old` (Linux's `linkat` without
            // AT_SYMLINK_FOLLOW); asking them to is `invalid`, as in wasmtime-wasi.
            if follows(old_path_flags) {
                return Err(FsError::Invalid);
            }
            old_dir.link_at(&old_path, new_dir, &new_path)
        })())
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Call<Resource<Descriptor>> {
        let node = self.node(&fd)?;
        let opened = dir_of(&node).and_then(|dir| {
            let options = open_options(dir, path_flags, open_flags, flags)?;
            // The handle first: a refused one opens nothing on the host.
            let handle = self.handle()?;
            Ok(Descriptor {
                node: dir.open_at(&path, options)?,
                _handle: handle,
            })
        });
        match opened {
            Ok(descriptor) => Ok(Ok(self.table.push(descriptor)?)),
            Err(err) => reply(Err(err)),
        }
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> Call<String> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.readlink_at(&path)))
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.remove_dir_at(&path)))
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> Call<()> {
        let (old, new) = (self.node(&fd)?, self.node(&new_fd)?);
        reply(
            dir_of(&old).and_then(|old_dir| old_dir.rename_at(&old_path, dir_of(&new)?, &new_path)),
        )
    }

    fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.symlink_at(&old_path, &new_path)))
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.unlink_file_at(&path)))
    }

    fn is_same_object(
        &mut self,
        fd: Resource<Descriptor>,
        other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        Ok(self.node(&fd)?.is_same_object(&self.node(&other)?))
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> Call<MetadataHashValue> {
        reply(self.node(&fd)?.metadata_hash().map(hash_value))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> Call<MetadataHashValue> {
        let node = self.node(&fd)?;
        reply(dir_of(&node).and_then(|dir| {
            dir.metadata_hash_at(&path, follows(path_flags))
                .map(hash_value)
        }))
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

impl types::HostDirectoryEntryStream for VfsCtxView<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirEntryStream>,
    ) -> Call<Option<DirectoryEntry>> {
        let stream = self.table.get_mut(&stream)?;
        Ok(Ok(stream.entries.next().map(|entry| DirectoryEntry {
            type_: descriptor_type(entry.kind),
            name: entry.name,
        })))
    }

    fn drop(&mut self, stream: Resource<DirEntryStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl VfsCtxView<'_> {
    /// A `write-via-stream` (at `offset`) or `append-via-stream` (`None`) stream.
    fn output_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Option<Filesize>,
    ) -> Call<Resource<DynOutputStream>> {
        let file = match file_of(&self.node(&fd)?) {
            Ok(file) if file.can_write() => file.clone(),
            Ok(_) => return reply(Err(FsError::BadDescriptor)),
            Err(err) => return reply(Err(err)),
        };
        let handle = match self.handle() {
            Ok(handle) => handle,
            Err(err) => return reply(Err(err)),
        };
        let stream: DynOutputStream = Box::new(FileWriter {
            file,
            position: offset,
            _handle: handle,
        });
        Ok(Ok(self.table.push(stream)?))
    }
}
