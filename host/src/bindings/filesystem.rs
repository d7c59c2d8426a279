//! `wasi:filesystem/{types,preopens}@0.2.12` for a worker, over its
//! [`MountTable`](crate::vfs::MountTable).
//!
//! A descriptor is a [`Node`]: an open directory or regular file of some
//! mount. Its streams implement wasmtime-wasi's `InputStream` and
//! `OutputStream`, so wasmtime-wasi's `wasi:io/streams` drives them, and
//! their errors carry an [`FsError`] that `filesystem-error-code` recovers.
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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable};
use wasmtime_wasi::p2::{StreamError, StreamResult};

use crate::runtime::WorkerState;
use crate::vfs::{
    DirEntry, DirHandle, FileHandle, FileKind, FsError, Metadata, MetadataHash, Node,
};
use crate::vfs::{NewTimestamp, OpenOptions};

mod generated {
    wasmtime::component::bindgen!({
        path: ["../wit/deps/io.wit", "../wit/deps/clocks.wit", "../wit/deps/filesystem.wit"],
        interfaces: "
            import wasi:filesystem/types@0.2.12;
            import wasi:filesystem/preopens@0.2.12;
        ",
        imports: { default: trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:filesystem/types.descriptor": crate::vfs::Node,
            "wasi:filesystem/types.directory-entry-stream": crate::bindings::filesystem::DirEntryStream,
        },
    });
}

use generated::wasi::filesystem::{preopens, types};
use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Filesize,
    MetadataHashValue, NewTimestamp as WasiNewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

/// The most an output stream accepts per `write`: what `check-write`
/// grants. Bounded because `write-zeroes` allocates that much.
const WRITE_PERMIT: usize = 1 << 20;

/// Adds `wasi:filesystem/types` and `wasi:filesystem/preopens` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    fn get(state: &mut WorkerState) -> &mut WorkerState {
        state
    }
    types::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, get)?;
    preopens::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, get)?;
    Ok(())
}

/// The `directory-entry-stream` resource: a directory's entries as they
/// were when `read-directory` was called.
pub struct DirEntryStream {
    entries: std::vec::IntoIter<DirEntry>,
}

/// A host call's result: the outer `Result` traps the worker (a bad
/// handle), the inner one is the `result<T, error-code>` the guest sees.
type Call<T> = wasmtime::Result<Result<T, ErrorCode>>;

impl From<FsError> for ErrorCode {
    fn from(err: FsError) -> ErrorCode {
        match err {
            FsError::Access => ErrorCode::Access,
            FsError::BadDescriptor => ErrorCode::BadDescriptor,
            FsError::Busy => ErrorCode::Busy,
            FsError::CrossDevice => ErrorCode::CrossDevice,
            FsError::Exist => ErrorCode::Exist,
            FsError::FileTooLarge => ErrorCode::FileTooLarge,
            FsError::IllegalByteSequence => ErrorCode::IllegalByteSequence,
            FsError::InsufficientMemory => ErrorCode::InsufficientMemory,
            FsError::InsufficientSpace => ErrorCode::InsufficientSpace,
            FsError::Interrupted => ErrorCode::Interrupted,
            FsError::Invalid => ErrorCode::Invalid,
            FsError::Io => ErrorCode::Io,
            FsError::IsDirectory => ErrorCode::IsDirectory,
            FsError::Loop => ErrorCode::Loop,
            FsError::NameTooLong => ErrorCode::NameTooLong,
            FsError::NoEntry => ErrorCode::NoEntry,
            FsError::NotDirectory => ErrorCode::NotDirectory,
            FsError::NotEmpty => ErrorCode::NotEmpty,
            FsError::NotPermitted => ErrorCode::NotPermitted,
            FsError::Overflow => ErrorCode::Overflow,
            FsError::ReadOnly => ErrorCode::ReadOnly,
            FsError::TextFileBusy => ErrorCode::TextFileBusy,
            FsError::TooManyLinks => ErrorCode::TooManyLinks,
            FsError::Unsupported => ErrorCode::Unsupported,
            FsError::WouldBlock => ErrorCode::WouldBlock,
        }
    }
}

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

fn follows(flags: PathFlags) -> bool {
    flags.contains(PathFlags::SYMLINK_FOLLOW)
}

fn descriptor_type(kind: FileKind) -> DescriptorType {
    match kind {
        FileKind::RegularFile => DescriptorType::RegularFile,
        FileKind::Directory => DescriptorType::Directory,
        FileKind::SymbolicLink => DescriptorType::SymbolicLink,
        FileKind::BlockDevice => DescriptorType::BlockDevice,
        FileKind::CharacterDevice => DescriptorType::CharacterDevice,
        FileKind::Fifo => DescriptorType::Fifo,
        FileKind::Socket => DescriptorType::Socket,
        FileKind::Unknown => DescriptorType::Unknown,
    }
}

/// A time as a `wall-clock.datetime`; times before 1970 cannot be one and
/// are reported as unknown (as wasmtime-wasi does) rather than failing the stat.
fn datetime(time: Option<SystemTime>) -> Option<Datetime> {
    let since_epoch = time?.duration_since(UNIX_EPOCH).ok()?;
    Some(Datetime {
        seconds: since_epoch.as_secs(),
        nanoseconds: since_epoch.subsec_nanos(),
    })
}

fn descriptor_stat(meta: Metadata) -> DescriptorStat {
    DescriptorStat {
        type_: descriptor_type(meta.kind),
        link_count: meta.nlink,
        size: meta.size,
        data_access_timestamp: datetime(meta.atime),
        data_modification_timestamp: datetime(meta.mtime),
        status_change_timestamp: datetime(meta.ctime),
    }
}

fn hash_value(hash: MetadataHash) -> MetadataHashValue {
    MetadataHashValue {
        lower: hash.lower,
        upper: hash.upper,
    }
}

/// A guest's new timestamp; `overflow` if it lies beyond what the host's
/// clock can represent (nanoseconds past a second carry into the seconds).
fn new_timestamp(time: WasiNewTimestamp) -> Result<NewTimestamp, FsError> {
    Ok(match time {
        WasiNewTimestamp::NoChange => NewTimestamp::NoChange,
        WasiNewTimestamp::Now => NewTimestamp::Now,
        WasiNewTimestamp::Timestamp(Datetime {
            seconds,
            nanoseconds,
        }) => {
            let seconds = seconds
                .checked_add(u64::from(nanoseconds / 1_000_000_000))
                .ok_or(FsError::Overflow)?;
            let since_epoch = Duration::new(seconds, nanoseconds % 1_000_000_000);
            NewTimestamp::Timestamp(
                UNIX_EPOCH
                    .checked_add(since_epoch)
                    .ok_or(FsError::Overflow)?,
            )
        }
    })
}

/// `open-at`'s flags as the backend's options, after the checks WASI
/// defines on the flags themselves.
fn open_options(
    dir: &DirHandle,
    path_flags: PathFlags,
    open_flags: OpenFlags,
    flags: DescriptorFlags,
) -> Result<OpenOptions, FsError> {
    // Synchronous-I/O modes are requests no backend honours: the tree
    // lives in memory and host files are written without `O_SYNC`; say so
    // rather than pretend (wasmtime-wasi answers the same).
    let sync = DescriptorFlags::FILE_INTEGRITY_SYNC
        | DescriptorFlags::DATA_INTEGRITY_SYNC
        | DescriptorFlags::REQUESTED_WRITE_SYNC;
    if flags.intersects(sync) {
        return Err(FsError::Unsupported);
    }
    // A handle that could mutate cannot come from a read-only mount.
    if flags.contains(DescriptorFlags::MUTATE_DIRECTORY) && dir.is_read_only() {
        return Err(FsError::ReadOnly);
    }
    let write = flags.contains(DescriptorFlags::WRITE);
    Ok(OpenOptions {
        follow_symlinks: follows(path_flags),
        create: open_flags.contains(OpenFlags::CREATE),
        exclusive: open_flags.contains(OpenFlags::EXCLUSIVE),
        truncate: open_flags.contains(OpenFlags::TRUNCATE),
        directory: open_flags.contains(OpenFlags::DIRECTORY),
        // A descriptor opened for neither reading nor writing (libc's
        // `O_SEARCH`, or a directory opened without rights) may still
        // read, as under wasmtime-wasi.
        read: flags.contains(DescriptorFlags::READ) || !write,
        write,
        // O_APPEND is the guest libc's business: it writes through
        // `append-via-stream`.
        append: false,
    })
}

impl WorkerState {
    /// The descriptor behind a guest handle; a stale or forged handle traps.
    fn node(&self, fd: &Resource<Node>) -> wasmtime::Result<Node> {
        Ok(self.table.get(fd)?.clone())
    }
}

impl preopens::Host for WorkerState {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Node>, String)>> {
        let mut preopens = Vec::with_capacity(self.mounts.len());
        for (guest_path, root) in self.mounts.preopens() {
            preopens.push((self.table.push(Node::Dir(root))?, guest_path));
        }
        Ok(preopens)
    }
}

impl types::Host for WorkerState {
    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<FsError>().map(|&e| ErrorCode::from(e)))
    }
}

impl types::HostDescriptor for WorkerState {
    fn read_via_stream(
        &mut self,
        fd: Resource<Node>,
        offset: Filesize,
    ) -> Call<Resource<DynInputStream>> {
        let file = match self.node(&fd)? {
            // POSIX: reading a directory is EISDIR.
            Node::Dir(_) => return reply(Err(FsError::IsDirectory)),
            Node::File(file) if !file.can_read() => return reply(Err(FsError::BadDescriptor)),
            Node::File(file) => file,
        };
        let stream: DynInputStream = Box::new(FileReader {
            file,
            position: offset,
        });
        Ok(Ok(self.table.push(stream)?))
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Node>,
        offset: Filesize,
    ) -> Call<Resource<DynOutputStream>> {
        self.output_stream(fd, Some(offset))
    }

    fn append_via_stream(&mut self, fd: Resource<Node>) -> Call<Resource<DynOutputStream>> {
        self.output_stream(fd, None)
    }

    fn advise(
        &mut self,
        fd: Resource<Node>,
        _offset: Filesize,
        _length: Filesize,
        _advice: Advice,
    ) -> Call<()> {
        // Advice is only a hint, and neither backend has a use for it.
        reply(file_of(&self.node(&fd)?).map(drop))
    }

    fn sync_data(&mut self, fd: Resource<Node>) -> Call<()> {
        reply(self.node(&fd)?.sync_data())
    }

    fn get_flags(&mut self, fd: Resource<Node>) -> Call<DescriptorFlags> {
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

    fn get_type(&mut self, fd: Resource<Node>) -> Call<DescriptorType> {
        // Both backends open nothing but directories and regular files.
        Ok(Ok(match self.node(&fd)? {
            Node::Dir(_) => DescriptorType::Directory,
            Node::File(_) => DescriptorType::RegularFile,
        }))
    }

    fn set_size(&mut self, fd: Resource<Node>, size: Filesize) -> Call<()> {
        reply(file_of(&self.node(&fd)?).and_then(|file| file.set_size(size)))
    }

    fn set_times(
        &mut self,
        fd: Resource<Node>,
        atime: WasiNewTimestamp,
        mtime: WasiNewTimestamp,
    ) -> Call<()> {
        let node = self.node(&fd)?;
        reply((|| {
            node.set_times(new_timestamp(atime)?, new_timestamp(mtime)?)
        })())
    }

    fn read(
        &mut self,
        fd: Resource<Node>,
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

    fn write(&mut self, fd: Resource<Node>, buffer: Vec<u8>, offset: Filesize) -> Call<Filesize> {
        let node = self.node(&fd)?;
        reply(file_of(&node).and_then(|file| Ok(file.write_at(offset, &buffer)? as Filesize)))
    }

    fn read_directory(&mut self, fd: Resource<Node>) -> Call<Resource<DirEntryStream>> {
        let entries = match dir_of(&self.node(&fd)?).and_then(DirHandle::read_dir) {
            Ok(entries) => entries,
            Err(err) => return reply(Err(err)),
        };
        let stream = DirEntryStream {
            entries: entries.into_iter(),
        };
        Ok(Ok(self.table.push(stream)?))
    }

    fn sync(&mut self, fd: Resource<Node>) -> Call<()> {
        reply(self.node(&fd)?.sync())
    }

    fn create_directory_at(&mut self, fd: Resource<Node>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.create_dir_at(&path)))
    }

    fn stat(&mut self, fd: Resource<Node>) -> Call<DescriptorStat> {
        reply(self.node(&fd)?.stat().map(descriptor_stat))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Node>,
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
        fd: Resource<Node>,
        path_flags: PathFlags,
        path: String,
        atime: WasiNewTimestamp,
        mtime: WasiNewTimestamp,
    ) -> Call<()> {
        let node = self.node(&fd)?;
        reply(dir_of(&node).and_then(|dir| {
            let (atime, mtime) = (new_timestamp(atime)?, new_timestamp(mtime)?);
            dir.set_times_at(&path, follows(path_flags), atime, mtime)
        }))
    }

    fn link_at(
        &mut self,
        fd: Resource<Node>,
        old_path_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Node>,
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
        fd: Resource<Node>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Call<Resource<Node>> {
        let node = self.node(&fd)?;
        let opened = dir_of(&node).and_then(|dir| {
            let options = open_options(dir, path_flags, open_flags, flags)?;
            dir.open_at(&path, options)
        });
        match opened {
            Ok(node) => Ok(Ok(self.table.push(node)?)),
            Err(err) => reply(Err(err)),
        }
    }

    fn readlink_at(&mut self, fd: Resource<Node>, path: String) -> Call<String> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.readlink_at(&path)))
    }

    fn remove_directory_at(&mut self, fd: Resource<Node>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.remove_dir_at(&path)))
    }

    fn rename_at(
        &mut self,
        fd: Resource<Node>,
        old_path: String,
        new_fd: Resource<Node>,
        new_path: String,
    ) -> Call<()> {
        let (old, new) = (self.node(&fd)?, self.node(&new_fd)?);
        reply(
            dir_of(&old).and_then(|old_dir| old_dir.rename_at(&old_path, dir_of(&new)?, &new_path)),
        )
    }

    fn symlink_at(&mut self, fd: Resource<Node>, old_path: String, new_path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.symlink_at(&old_path, &new_path)))
    }

    fn unlink_file_at(&mut self, fd: Resource<Node>, path: String) -> Call<()> {
        reply(dir_of(&self.node(&fd)?).and_then(|dir| dir.unlink_file_at(&path)))
    }

    fn is_same_object(
        &mut self,
        fd: Resource<Node>,
        other: Resource<Node>,
    ) -> wasmtime::Result<bool> {
        Ok(self.node(&fd)?.is_same_object(&self.node(&other)?))
    }

    fn metadata_hash(&mut self, fd: Resource<Node>) -> Call<MetadataHashValue> {
        reply(self.node(&fd)?.metadata_hash().map(hash_value))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Node>,
        path_flags: PathFlags,
        path: String,
    ) -> Call<MetadataHashValue> {
        let node = self.node(&fd)?;
        reply(dir_of(&node).and_then(|dir| {
            dir.metadata_hash_at(&path, follows(path_flags))
                .map(hash_value)
        }))
    }

    fn drop(&mut self, fd: Resource<Node>) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        Ok(())
    }
}

impl types::HostDirectoryEntryStream for WorkerState {
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

impl WorkerState {
    /// A `write-via-stream` (at `offset`) or `append-via-stream` (`None`) stream.
    fn output_stream(
        &mut self,
        fd: Resource<Node>,
        offset: Option<Filesize>,
    ) -> Call<Resource<DynOutputStream>> {
        let file = match file_of(&self.node(&fd)?) {
            Ok(file) if file.can_write() => file.clone(),
            Ok(_) => return reply(Err(FsError::BadDescriptor)),
            Err(err) => return reply(Err(err)),
        };
        let stream: DynOutputStream = Box::new(FileWriter {
            file,
            position: offset,
        });
        Ok(Ok(self.table.push(stream)?))
    }
}

/// A stream error that `filesystem-error-code` maps back to `error`.
fn stream_error(error: FsError) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(error))
}

/// `read-via-stream`: reads the file from a position that advances with
/// each read. At the end of the file the stream reports `closed`; if the
/// file grows later, reading goes on.
struct FileReader {
    file: FileHandle,
    position: u64,
}

#[async_trait::async_trait]
impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let data = self
            .file
            .read_at(self.position, size as u64)
            .map_err(stream_error)?;
        if data.is_empty() {
            return Err(StreamError::Closed);
        }
        self.position = self.position.saturating_add(data.len() as u64);
        Ok(Bytes::from(data))
    }
}

#[async_trait::async_trait]
impl Pollable for FileReader {
    /// Always ready: a read happens in the call that asks for it.
    async fn ready(&mut self) {}
}

/// `write-via-stream` (writes at a position that advances) or
/// `append-via-stream` (`position` is `None`: each write goes to the end of
/// the file, atomically with respect to other appends).
struct FileWriter {
    file: FileHandle,
    position: Option<u64>,
}

#[async_trait::async_trait]
impl OutputStream for FileWriter {
    /// Writes all of `bytes` now, or nothing if it fails (e.g. past a quota).
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match &mut self.position {
            Some(position) => {
                let written = self
                    .file
                    .write_at(*position, &bytes)
                    .map_err(stream_error)?;
                *position = position.saturating_add(written as u64);
            }
            None => {
                self.file.append(&bytes).map_err(stream_error)?;
            }
        }
        Ok(())
    }

    /// Nothing is buffered: every write is already in the file.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for FileWriter {
    /// Always ready: a write happens in the call that asks for it.
    async fn ready(&mut self) {}
}

/// The binding's answers that no guest libc asks for (`is-same-object`,
/// `filesystem-error-code` on a foreign error, forged handles, the flags
/// libc never sets); the end-to-end tests in `tests/vfs.rs` cover the rest.
#[cfg(test)]
mod tests {

    use super::types::{Host as _, HostDescriptor as _};
    use super::*;
    use crate::vfs::{Limits, MemFs, Mount, MountTable};

    /// A worker's state with the tree at `/` and a read-only copy at `/ro`.
    fn state() -> WorkerState {
        let fs = MemFs::new(Limits::UNLIMITED);
        let mut mounts = MountTable::new();
        mounts
            .add("/", Mount::mem(&fs, "/", false).unwrap())
            .unwrap();
        mounts
            .add("/ro", Mount::mem(&fs, "/", true).unwrap())
            .unwrap();
        WorkerState::for_tests(mounts)
    }

    /// A second handle on the same resource, for calls that consume one.
    fn again<T: 'static>(resource: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(resource.rep())
    }

    fn preopens(state: &mut WorkerState) -> (Resource<Node>, Resource<Node>) {
        let mut dirs = preopens::Host::get_directories(state).unwrap().into_iter();
        let (root, root_path) = dirs.next().unwrap();
        let (ro, ro_path) = dirs.next().unwrap();
        assert_eq!((root_path.as_str(), ro_path.as_str()), ("/", "/ro"));
        (root, ro)
    }

    fn open(
        state: &mut WorkerState,
        dir: &Resource<Node>,
        path: &str,
        create: bool,
    ) -> Resource<Node> {
        let open_flags = if create {
            OpenFlags::CREATE
        } else {
            OpenFlags::empty()
        };
        let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
        state
            .open_at(
                again(dir),
                PathFlags::empty(),
                path.into(),
                open_flags,
                flags,
            )
            .unwrap()
            .unwrap()
    }

    #[test]
    fn is_same_object_follows_identity_not_names() {
        let mut state = state();
        let (root, _) = preopens(&mut state);
        let a = open(&mut state, &root, "a", true);
        let b = open(&mut state, &root, "b", true);
        state
            .link_at(
                again(&root),
                PathFlags::empty(),
                "a".into(),
                again(&root),
                "a2".into(),
            )
            .unwrap()
            .unwrap();
        let a2 = open(&mut state, &root, "a2", false);
        assert!(state.is_same_object(again(&a), again(&a2)).unwrap());
        assert!(!state.is_same_object(again(&a), again(&b)).unwrap());
        assert!(!state.is_same_object(again(&a), again(&root)).unwrap());
        let root2 = open_dir(&mut state, &root, ".");
        assert!(state.is_same_object(again(&root), root2).unwrap());
    }

    fn open_dir(state: &mut WorkerState, dir: &Resource<Node>, path: &str) -> Resource<Node> {
        state
            .open_at(
                again(dir),
                PathFlags::empty(),
                path.into(),
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ,
            )
            .unwrap()
            .unwrap()
    }

    #[test]
    fn metadata_hash_agrees_by_handle_and_by_path_and_tracks_changes() {
        let mut state = state();
        let (root, _) = preopens(&mut state);
        let a = open(&mut state, &root, "a", true);
        let by_handle = state.metadata_hash(again(&a)).unwrap().unwrap();
        let by_path = state
            .metadata_hash_at(again(&root), PathFlags::empty(), "a".into())
            .unwrap()
            .unwrap();
        let pair = |hash: MetadataHashValue| (hash.lower, hash.upper);
        assert_eq!(pair(by_handle), pair(by_path));
        assert_eq!(state.write(again(&a), b"x".to_vec(), 0).unwrap(), Ok(1));
        let changed = state.metadata_hash(again(&a)).unwrap().unwrap();
        assert_ne!(pair(changed), pair(by_handle));
    }

    #[test]
    fn stream_errors_map_back_to_their_code() {
        let mut state = state();
        let ours = state
            .table
            .push(wasmtime::Error::new(FsError::InsufficientSpace))
            .unwrap();
        let foreign = state
            .table
            .push(wasmtime::Error::msg("not a filesystem error"))
            .unwrap();
        assert_eq!(
            state.filesystem_error_code(ours).unwrap(),
            Some(ErrorCode::InsufficientSpace)
        );
        assert_eq!(state.filesystem_error_code(foreign).unwrap(), None);
    }

    #[test]
    fn forged_and_mistyped_handles_trap_instead_of_panicking() {
        let mut state = state();
        let (root, _) = preopens(&mut state);
        let forged: Resource<Node> = Resource::new_borrow(root.rep() + 1000);
        assert!(state.stat(forged).is_err());
        let stream = state.read_directory(again(&root)).unwrap().unwrap();
        let mistyped: Resource<Node> = Resource::new_borrow(stream.rep());
        assert!(state.get_type(mistyped).is_err());
        let dropped = again(&root);
        types::HostDescriptor::drop(&mut state, root).unwrap();
        assert!(
            state.get_flags(dropped).is_err(),
            "a dropped handle is gone"
        );
    }

    #[test]
    fn flags_that_cannot_be_honoured_are_refused() {
        let mut state = state();
        let (root, ro) = preopens(&mut state);
        let rw_flags = state.get_flags(again(&root)).unwrap().unwrap();
        assert_eq!(
            rw_flags,
            DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY
        );
        assert_eq!(
            state.get_flags(again(&ro)).unwrap(),
            Ok(DescriptorFlags::READ)
        );
        let mutate = DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY;
        let opened = state.open_at(
            again(&ro),
            PathFlags::empty(),
            ".".into(),
            OpenFlags::empty(),
            mutate,
        );
        assert_eq!(opened.unwrap().err(), Some(ErrorCode::ReadOnly));
        let sync = DescriptorFlags::READ | DescriptorFlags::DATA_INTEGRITY_SYNC;
        let opened = state.open_at(
            again(&root),
            PathFlags::empty(),
            ".".into(),
            OpenFlags::empty(),
            sync,
        );
        assert_eq!(opened.unwrap().err(), Some(ErrorCode::Unsupported));
        open(&mut state, &root, "a", true);
        let linked = state.link_at(
            again(&root),
            PathFlags::SYMLINK_FOLLOW,
            "a".into(),
            again(&root),
            "b".into(),
        );
        assert_eq!(linked.unwrap(), Err(ErrorCode::Invalid));
    }
}
