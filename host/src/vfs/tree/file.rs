//! `MemFile`, an open regular file of a `MemFs`: reads, writes, appends and
//! resizes under the file's own lock, with quota secured before any change.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::inode::{Body, FileState, Inode, read, write};
use crate::vfs::backend::MemObject;
use crate::vfs::error::FsError;
use crate::vfs::types::{Metadata, NewTimes};

/// An open regular file of a `MemFs`.
#[derive(Clone)]
pub(crate) struct MemFile {
    pub(super) inode: Arc<Inode>,
}

impl MemObject for MemFile {
    fn identity(&self) -> (u64, u64) {
        (self.inode.accounts.device, self.inode.ino)
    }

    fn stat(&self) -> Metadata {
        self.inode.metadata()
    }

    fn set_times(&self, times: NewTimes) {
        let now = SystemTime::now();
        write(self.state()).attrs.set_times(times, now);
    }
}

impl MemFile {
    fn state(&self) -> &RwLock<FileState> {
        match &self.inode.body {
            Body::File(state) => state,
            _ => unreachable!("a MemFile always holds a regular file"),
        }
    }

    /// Up to `len` bytes from `offset`: fewer at the end, none past it.
    pub(crate) fn read_at(&self, offset: u64, len: u64) -> Vec<u8> {
        let state = read(self.state());
        let size = state.data.len() as u64;
        let start = offset.min(size);
        let end = offset.saturating_add(len).min(size);
        state.data[start as usize..end as usize].to_vec()
    }

    /// Writes `data` at `offset`, filling any gap before it with zeros.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        let mut state = write(self.state());
        self.write_locked(&mut state, offset, data)
    }

    /// Writes `data` at the end of the file in one step: concurrent appends
    /// never interleave or overwrite each other.
    pub(crate) fn append(&self, data: &[u8]) -> Result<usize, FsError> {
        let mut state = write(self.state());
        let end = state.data.len() as u64;
        self.write_locked(&mut state, end, data)
    }

    pub(crate) fn set_size(&self, size: u64) -> Result<(), FsError> {
        let mut state = write(self.state());
        self.resize(&mut state, size)?;
        state.attrs.modified(SystemTime::now());
        Ok(())
    }

    fn write_locked(
        &self,
        state: &mut FileState,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, FsError> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::FileTooLarge)?;
        if end > state.data.len() as u64 {
            self.resize(state, end)?;
        }
        state.data[offset as usize..end as usize].copy_from_slice(data);
        state.attrs.modified(SystemTime::now());
        Ok(data.len())
    }

    /// Grows (with zeros) or shrinks the contents; quota and memory are
    /// secured before anything changes, so a failure leaves the file as it was.
    fn resize(&self, state: &mut FileState, size: u64) -> Result<(), FsError> {
        let accounts = &self.inode.accounts;
        let old = state.data.len();
        let new = usize::try_from(size)
            .ok()
            .filter(|&size| size <= isize::MAX as usize)
            .ok_or(FsError::FileTooLarge)?;
        if new > old {
            let grow = (new - old) as u64;
            accounts.reserve_bytes(grow)?;
            if state.data.try_reserve(new - old).is_err() {
                accounts.release_bytes(grow);
                return Err(FsError::InsufficientSpace);
            }
            state.data.resize(new, 0);
        } else {
            state.data.truncate(new);
            if state.data.capacity() > 2 * new {
                state.data.shrink_to_fit();
            }
            accounts.release_bytes((old - new) as u64);
        }
        Ok(())
    }
}
