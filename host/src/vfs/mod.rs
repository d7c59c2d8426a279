//! The shared virtual filesystem: what workers see through
//! `wasi:filesystem`, as plain Rust. It must not depend on wasmtime,
//! `bindings` or `runtime`: the WASI binding (`bindings/filesystem.rs`)
//! depends on it, never the other way round.
//!
//! - [`MemFs`] is the in-memory tree that all workers of a run share, with
//!   per-inode locks, POSIX-like semantics (atomic appends and renames,
//!   unlinked-but-open files, link counts, timestamps) and quotas. It can be
//!   seeded from a host directory and saved back to one.
//! - A host directory is a second backend, over cap-std.
//! - A [`Mount`] is either, read-only or read-write; a [`MountTable`] places
//!   mounts at guest paths, one WASI preopen each.
//! - [`DirHandle`] and [`FileHandle`] are open directories and files of any
//!   mount, with one set of operations and one set of error rules
//!   ([`FsError`], one variant per WASI error code): what the WASI binding
//!   calls.
//!
//! No path, `..` or symlink leads outside the directory it is resolved
//! from, and so never outside a mount: both backends refuse with
//! `NotPermitted`.

mod backend;
mod error;
mod handle;
mod host;
mod mount;
mod path;
mod persist;
mod spec;
mod tree;
mod types;

#[cfg(test)]
mod tests;

pub use error::FsError;
pub use handle::{DirHandle, DirListing, FileHandle, Node};
pub use mount::{Mount, MountTable};
pub use persist::PersistError;
pub use spec::{MountSource, MountSpec};
pub use tree::{ByteBudget, ByteCharge, Limits, MemFs, Usage};
pub use types::{DirEntry, FileKind, Metadata, MetadataHash, NewTimes, NewTimestamp, OpenOptions};
