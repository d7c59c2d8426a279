//! What an open directory or file of either backend offers alike, whatever
//! its kind: metadata, times, syncing and identity. The handles state the
//! rules of these operations once, over [`Backend`], for directories and
//! files both. Depends on nothing but the error type and the vfs types.

use super::error::FsError;
use super::types::{Metadata, NewTimes};

/// An open directory or file of the in-memory tree, where these never fail.
pub(super) trait MemObject {
    fn stat(&self) -> Metadata;

    fn set_times(&self, times: NewTimes);

    /// The object's identity as `(device, inode)`.
    fn identity(&self) -> (u64, u64);
}

/// An open directory or file on the host.
pub(super) trait HostObject {
    fn stat(&self) -> Result<Metadata, FsError>;

    fn set_times(&self, times: NewTimes) -> Result<(), FsError>;

    fn sync(&self) -> Result<(), FsError>;

    fn sync_data(&self) -> Result<(), FsError>;
}

/// What a handle holds: an object of the in-memory tree (`M`) or of a host
/// directory (`H`), both directories or both files.
#[derive(Clone)]
pub(super) enum Backend<M, H> {
    Mem(M),
    Host(H),
}

impl<M: MemObject, H: HostObject> Backend<M, H> {
    pub(super) fn stat(&self) -> Result<Metadata, FsError> {
        match self {
            Backend::Mem(object) => Ok(object.stat()),
            Backend::Host(object) => object.stat(),
        }
    }

    pub(super) fn set_times(&self, times: NewTimes) -> Result<(), FsError> {
        match self {
            Backend::Mem(object) => {
                object.set_times(times);
                Ok(())
            }
            Backend::Host(object) => object.set_times(times),
        }
    }

    /// Nothing to do in memory.
    pub(super) fn sync(&self) -> Result<(), FsError> {
        match self {
            Backend::Mem(_) => Ok(()),
            Backend::Host(object) => object.sync(),
        }
    }

    /// Nothing to do in memory.
    pub(super) fn sync_data(&self) -> Result<(), FsError> {
        match self {
            Backend::Mem(_) => Ok(()),
            Backend::Host(object) => object.sync_data(),
        }
    }

    /// `(device, inode)`, or `None` when a host object cannot be stat'ed.
    pub(super) fn identity(&self) -> Option<(u64, u64)> {
        match self {
            Backend::Mem(object) => Some(object.identity()),
            Backend::Host(object) => object.stat().ok().map(|meta| (meta.device, meta.inode)),
        }
    }
}
