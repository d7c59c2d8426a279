//! The one error type of the virtual filesystem, shaped after WASI's error codes.

use std::io;

/// Why a filesystem operation failed.
///
/// Each variant is one `wasi:filesystem/types.error-code` case, named the same
/// way (in Rust case), so the WASI binding maps them one to one and both
/// backends report the same code for the same situation:
///
/// | variant | WASI `error-code` | POSIX |
/// | --- | --- | --- |
/// | `Access` | `access` | `EACCES` |
/// | `BadDescriptor` | `bad-descriptor` | `EBADF` |
/// | `Busy` | `busy` | `EBUSY` |
/// | `CrossDevice` | `cross-device` | `EXDEV` |
/// | `Exist` | `exist` | `EEXIST` |
/// | `FileTooLarge` | `file-too-large` | `EFBIG` |
/// | `IllegalByteSequence` | `illegal-byte-sequence` | `EILSEQ` |
/// | `InsufficientMemory` | `insufficient-memory` | `ENOMEM` |
/// | `InsufficientSpace` | `insufficient-space` | `ENOSPC`, `EDQUOT` |
/// | `Interrupted` | `interrupted` | `EINTR` |
/// | `Invalid` | `invalid` | `EINVAL` |
/// | `Io` | `io` | `EIO` and anything not listed here |
/// | `IsDirectory` | `is-directory` | `EISDIR` |
/// | `Loop` | `loop` | `ELOOP` |
/// | `NameTooLong` | `name-too-long` | `ENAMETOOLONG` |
/// | `NoEntry` | `no-entry` | `ENOENT` |
/// | `NotDirectory` | `not-directory` | `ENOTDIR` |
/// | `NotEmpty` | `not-empty` | `ENOTEMPTY` |
/// | `NotPermitted` | `not-permitted` | `EPERM`, and any path leading outside its mount |
/// | `Overflow` | `overflow` | `EOVERFLOW` |
/// | `ReadOnly` | `read-only` | `EROFS` |
/// | `TextFileBusy` | `text-file-busy` | `ETXTBSY` |
/// | `TooManyLinks` | `too-many-links` | `EMLINK` |
/// | `Unsupported` | `unsupported` | `ENOTSUP`, `EOPNOTSUPP` |
/// | `WouldBlock` | `would-block` | `EAGAIN` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FsError {
    /// Permission denied by the host's file permissions.
    #[error("permission denied")]
    Access,
    /// The handle does not allow this operation (e.g. writing a file opened for reading).
    #[error("bad descriptor")]
    BadDescriptor,
    /// The object is in use and cannot be moved or removed (e.g. renaming `.`).
    #[error("device or resource busy")]
    Busy,
    /// A rename or hard link between two different mounts.
    #[error("cross-device link")]
    CrossDevice,
    /// The name is already taken.
    #[error("file exists")]
    Exist,
    /// An offset or size beyond what a file can hold.
    #[error("file too large")]
    FileTooLarge,
    /// A host file name or link target that is not valid UTF-8.
    #[error("illegal byte sequence")]
    IllegalByteSequence,
    /// The host ran out of memory.
    #[error("insufficient memory")]
    InsufficientMemory,
    /// A quota (bytes or inodes) or the host disk is full.
    #[error("insufficient space")]
    InsufficientSpace,
    /// A host call was interrupted.
    #[error("interrupted")]
    Interrupted,
    /// An argument makes no sense for this operation.
    #[error("invalid argument")]
    Invalid,
    /// Any other host I/O failure.
    #[error("input/output error")]
    Io,
    /// A directory where the operation needs something else.
    #[error("is a directory")]
    IsDirectory,
    /// Too many symbolic links, or a symbolic link where none may be followed.
    #[error("too many levels of symbolic links")]
    Loop,
    /// A path component longer than 255 bytes or a path longer than 4096 bytes.
    #[error("name too long")]
    NameTooLong,
    /// No such file or directory.
    #[error("no such file or directory")]
    NoEntry,
    /// A path component that must be a directory is not one.
    #[error("not a directory")]
    NotDirectory,
    /// The directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// Never allowed: escaping a mount, an absolute path or symlink, hard-linking a directory.
    #[error("operation not permitted")]
    NotPermitted,
    /// A value does not fit the type that must hold it.
    #[error("value too large")]
    Overflow,
    /// The mount is read-only.
    #[error("read-only filesystem")]
    ReadOnly,
    /// The file is being executed by the host.
    #[error("text file busy")]
    TextFileBusy,
    /// The host file has too many hard links.
    #[error("too many links")]
    TooManyLinks,
    /// The worker's limit of open handles or host descriptors, or the
    /// host's own, is reached (`EMFILE`, `ENFILE`). WASI 0.2 has no such
    /// code: the guest sees `insufficient-memory` (`ENOMEM`).
    #[error("too many open files")]
    TooManyOpenFiles,
    /// The backend cannot do this.
    #[error("operation not supported")]
    Unsupported,
    /// The host would have to block.
    #[error("operation would block")]
    WouldBlock,
}

impl From<io::Error> for FsError {
    /// Maps a host error by its errno when it has one, else by its kind.
    ///
    /// cap-std reports a path that leads outside its directory as a
    /// `PermissionDenied` error without an errno (or, through `openat2`, as
    /// `EXDEV` turned into that same error); it becomes `NotPermitted`, the
    /// code the in-memory backend uses for escapes. A real `EACCES` keeps its
    /// errno and becomes `Access`.
    fn from(err: io::Error) -> FsError {
        if let Some(errno) = err.raw_os_error() {
            return from_errno(errno);
        }
        match err.kind() {
            io::ErrorKind::NotFound => FsError::NoEntry,
            io::ErrorKind::PermissionDenied => FsError::NotPermitted,
            io::ErrorKind::AlreadyExists => FsError::Exist,
            io::ErrorKind::WouldBlock => FsError::WouldBlock,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => FsError::Invalid,
            io::ErrorKind::InvalidData => FsError::IllegalByteSequence,
            io::ErrorKind::Interrupted => FsError::Interrupted,
            io::ErrorKind::Unsupported => FsError::Unsupported,
            io::ErrorKind::OutOfMemory => FsError::InsufficientMemory,
            io::ErrorKind::NotADirectory => FsError::NotDirectory,
            io::ErrorKind::IsADirectory => FsError::IsDirectory,
            io::ErrorKind::DirectoryNotEmpty => FsError::NotEmpty,
            io::ErrorKind::ReadOnlyFilesystem => FsError::ReadOnly,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => FsError::InsufficientSpace,
            io::ErrorKind::FileTooLarge => FsError::FileTooLarge,
            io::ErrorKind::ResourceBusy => FsError::Busy,
            io::ErrorKind::ExecutableFileBusy => FsError::TextFileBusy,
            io::ErrorKind::CrossesDevices => FsError::CrossDevice,
            io::ErrorKind::TooManyLinks => FsError::TooManyLinks,
            _ => FsError::Io,
        }
    }
}

/// Maps a raw host errno onto the WASI code of the same meaning.
fn from_errno(errno: i32) -> FsError {
    match errno {
        libc::EACCES => FsError::Access,
        libc::EBADF => FsError::BadDescriptor,
        libc::EBUSY => FsError::Busy,
        libc::EXDEV => FsError::CrossDevice,
        libc::EEXIST => FsError::Exist,
        libc::EFBIG => FsError::FileTooLarge,
        libc::EILSEQ => FsError::IllegalByteSequence,
        libc::ENOMEM => FsError::InsufficientMemory,
        libc::ENOSPC | libc::EDQUOT => FsError::InsufficientSpace,
        libc::EINTR => FsError::Interrupted,
        libc::EINVAL => FsError::Invalid,
        libc::EISDIR => FsError::IsDirectory,
        libc::ELOOP => FsError::Loop,
        libc::ENAMETOOLONG => FsError::NameTooLong,
        libc::ENOENT => FsError::NoEntry,
        libc::ENOTDIR => FsError::NotDirectory,
        libc::ENOTEMPTY => FsError::NotEmpty,
        libc::EPERM => FsError::NotPermitted,
        libc::EOVERFLOW => FsError::Overflow,
        libc::EROFS => FsError::ReadOnly,
        libc::ETXTBSY => FsError::TextFileBusy,
        libc::EMLINK => FsError::TooManyLinks,
        libc::EMFILE | libc::ENFILE => FsError::TooManyOpenFiles,
        // The two are one value on Linux and two elsewhere, so not a pattern.
        e if e == libc::ENOTSUP || e == libc::EOPNOTSUPP => FsError::Unsupported,
        libc::EAGAIN => FsError::WouldBlock,
        _ => FsError::Io,
    }
}
