//! Condition variable bound to a lock, like `multiprocessing.Condition`.
//!
//! Local only (`local.rs`): a condition needs a local lock, because its
//! waiters give the lock up and take it back in this process (see
//! `docs/scale-out.md`).
//!
//! Like all of `ipc/`, nothing here uses wasmtime, the WIT bindings or
//! the worker runtime.

pub(super) mod local;

use std::sync::Arc;

pub use self::local::Condition;
use super::{Backend, IpcError, Lock, NamedObject};

impl NamedObject for Condition {
    const KIND: &'static str = "condition";
    /// The lock its waiters hold.
    type Config = Arc<Lock>;

    /// Always local, whatever `backend` says; `Invalid` over a Redis lock.
    fn create(_backend: &Backend, name: &str, lock: Arc<Lock>) -> Result<Arc<Condition>, IpcError> {
        match &*lock {
            Lock::Local(lock, _) => Ok(Condition::new(name, lock.clone())),
            Lock::Redis(redis) => Err(IpcError::Invalid(format!(
                "condition `{name}`: lock `{}` is on Redis, and conditions need a \
                 local lock (declare it with backend = \"local\")",
                redis.name()
            ))),
        }
    }
}
