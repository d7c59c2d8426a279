//! Conversions between `vfs`'s types and those of the `wasi:filesystem`
//! WIT: error codes, stats, timestamps and `open-at`'s flags. Plain
//! functions of their arguments, with no access to a worker's state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::types::{
    DescriptorFlags, DescriptorStat, DescriptorType, ErrorCode, MetadataHashValue,
    NewTimestamp as WasiNewTimestamp, OpenFlags, PathFlags,
};
use crate::vfs::{
    DirHandle, FileKind, FsError, Metadata, MetadataHash, NewTimes, NewTimestamp, OpenOptions,
};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

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
            // The closest code to `EMFILE` that guests can be given: WASI 0.2
            // has none for it, and wasi-libc and the preview1 adapter turn
            // this one into `ENOMEM`, a resource the program may free.
            FsError::TooManyOpenFiles => ErrorCode::InsufficientMemory,
            FsError::Unsupported => ErrorCode::Unsupported,
            FsError::WouldBlock => ErrorCode::WouldBlock,
        }
    }
}

/// Whether a path's last component is followed if it is a symlink.
pub(super) fn follows(flags: PathFlags) -> bool {
    flags.contains(PathFlags::SYMLINK_FOLLOW)
}

/// A file kind as a WASI descriptor type.
pub(super) fn descriptor_type(kind: FileKind) -> DescriptorType {
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

/// A file's metadata as a WASI `descriptor-stat`.
pub(super) fn descriptor_stat(meta: Metadata) -> DescriptorStat {
    DescriptorStat {
        type_: descriptor_type(meta.kind),
        link_count: meta.nlink,
        size: meta.size,
        data_access_timestamp: datetime(meta.atime),
        data_modification_timestamp: datetime(meta.mtime),
        status_change_timestamp: datetime(meta.ctime),
    }
}

/// A file's identity hash as a WASI `metadata-hash-value`.
pub(super) fn hash_value(hash: MetadataHash) -> MetadataHashValue {
    MetadataHashValue {
        lower: hash.lower,
        upper: hash.upper,
    }
}

/// A `set-times` call's two timestamps; `overflow` if either lies beyond
/// what the host's clock can represent.
pub(super) fn new_times(
    atime: WasiNewTimestamp,
    mtime: WasiNewTimestamp,
) -> Result<NewTimes, FsError> {
    Ok(NewTimes {
        atime: new_timestamp(atime)?,
        mtime: new_timestamp(mtime)?,
    })
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
pub(super) fn open_options(
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
