//! Where named objects live: in this process, or in a Redis server shared
//! by several hosts. `redis.rs` is the Redis plumbing every Redis-backed
//! object uses (connection, notifications, leases, retries); the objects
//! themselves live in their own folders (`queue/redis.rs`, ...).
//! Plain async Rust: nothing from wasmtime, the WIT bindings or the worker
//! runtime.

pub mod redis;

use std::sync::Arc;

use self::redis::RedisBackend;

/// Where a named object lives.
#[derive(Clone, Default, Debug)]
pub enum Backend {
    /// In this process: shared by the workers of one run on this host.
    #[default]
    Local,
    /// In a Redis server: shared by every host using the same namespace.
    Redis(Arc<RedisBackend>),
}

impl Backend {
    /// `local`, or the Redis address and namespace.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local => "local".into(),
            Backend::Redis(r) => format!("{} (namespace `{}`)", r.address(), r.namespace()),
        }
    }
}
