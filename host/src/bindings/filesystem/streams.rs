//! The streams of `read-via-stream`, `write-via-stream` and
//! `append-via-stream`: a [`FileHandle`] as wasmtime-wasi's `InputStream` and
//! `OutputStream`, so wasmtime-wasi's `wasi:io/streams` drives them. They
//! know only the file they were opened on, never the worker's state; each
//! holds the handle token it costs the worker until wasmtime-wasi drops it.

use bytes::Bytes;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::ledger::Token;
use crate::vfs::{FileHandle, FsError};

/// The most an output stream accepts per `write`: what `check-write`
/// grants. Bounded because `write-zeroes` allocates that much.
const WRITE_PERMIT: usize = 1 << 20;

/// A stream error that `filesystem-error-code` maps back to `error`.
fn stream_error(error: FsError) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(error))
}

/// `read-via-stream`: reads the file from a position that advances with
/// each read. At the end of the file the stream reports `closed`; if the
/// file grows later, reading goes on.
pub(super) struct FileReader {
    pub(super) file: FileHandle,
    pub(super) position: u64,
    /// The open handle the stream costs the worker.
    pub(super) _handle: Token,
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
pub(super) struct FileWriter {
    pub(super) file: FileHandle,
    pub(super) position: Option<u64>,
    /// The open handle the stream costs the worker.
    pub(super) _handle: Token,
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
