//! Pipe: a named duplex channel of byte messages between exactly two
//! workers, like `multiprocessing.Pipe()`. When one end closes (or its worker
//! ends), the other end drains what was sent, then sees `Closed`; unless
//! the pipe re-grants its ends ([`PipeConfig::regrant`]): then a restarted
//! worker opens its end again, and the peer sees `Closed` only once that
//! worker has ended for good.
//!
//! Local only (`local.rs`): a pipe joins two workers of one host.
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime.

pub(super) mod local;

use std::sync::Arc;

pub use self::local::{Pipe, PipeEnd, PipeInbound};
use super::{Backend, IpcError, NamedObject};

/// How a pipe is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeConfig {
    /// Messages buffered per direction before `send` waits.
    pub capacity: usize,
    /// The largest message accepted, in bytes.
    pub max_message: usize,
    /// The bytes buffered per direction before `send` waits: bounds what
    /// the pipe makes its host hold.
    pub max_bytes: usize,
    /// The names of the two workers granted the ends, in end order. `None`:
    /// the first two workers that open the pipe get the ends.
    pub ends: Option<[String; 2]>,
    /// With `ends`: an end whose worker drops it (by closing it or by
    /// dying) goes back to that worker's next start, as its restart opens
    /// it again, and its peer sees no close; what either side sent waits.
    /// The end closes for good when the host says its worker has ended
    /// for good ([`Pipe::close_end_of`]).
    pub regrant: bool,
}

/// The default [`PipeConfig::max_bytes`] per direction: 64 MiB, so the
/// default 64 messages of up to 16 MiB cannot make the host hold a gigabyte.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

impl Default for PipeConfig {
    fn default() -> Self {
        PipeConfig {
            capacity: 64,
            max_message: 16 << 20,
            max_bytes: DEFAULT_MAX_BYTES,
            ends: None,
            regrant: false,
        }
    }
}

impl NamedObject for Pipe {
    const KIND: &'static str = "pipe";
    type Config = PipeConfig;

    /// Always local, whatever `backend` says.
    fn create(_backend: &Backend, name: &str, config: PipeConfig) -> Result<Arc<Pipe>, IpcError> {
        Ok(Pipe::new(name, config))
    }
}
