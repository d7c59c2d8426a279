//! An event in Redis: a key that exists while the flag is set.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::set_within;
use crate::ipc::IpcError;
use crate::ipc::backend::redis::{Attempt, RedisBackend, check_name};

/// A named event flag in Redis.
pub struct RedisEvent {
    backend: Arc<RedisBackend>,
    name: String,
    key: String,
    channel: String,
    notify: Arc<Notify>,
}

impl RedisEvent {
    /// Attaches to (or creates, cleared) the event `name`. Does no I/O.
    pub fn new(backend: &Arc<RedisBackend>, name: &str) -> Result<Arc<RedisEvent>, IpcError> {
        check_name("event", name)?;
        let channel = backend.key("ev", name, ":ch");
        Ok(Arc::new(RedisEvent {
            notify: backend.channel(&channel),
            backend: backend.clone(),
            name: name.to_string(),
            key: backend.key("ev", name, ""),
            channel,
        }))
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Attempt<()> {
        let set = ::redis::cmd("EXISTS")
            .arg(&self.key)
            .query_async::<bool>(&mut self.backend.conn())
            .await;
        match set {
            Ok(true) => Attempt::Done(()),
            Ok(false) => Attempt::Wait,
            Err(e) => self.backend.failed(e, true),
        }
    }

    /// Whether the flag is set; `false` if Redis cannot be reached. One
    /// round trip, on async I/O (it holds no thread while it waits).
    pub async fn is_set(&self) -> bool {
        matches!(self.check().await, Attempt::Done(()))
    }

    /// Sets the flag and wakes every waiter on every host. One round trip,
    /// on async I/O.
    pub async fn set(&self) -> Result<(), IpcError> {
        self.backend.raise(&self.key, &self.channel, "set").await
    }

    /// Clears the flag. One round trip, on async I/O.
    pub async fn clear(&self) -> Result<(), IpcError> {
        ::redis::cmd("DEL")
            .arg(&self.key)
            .query_async::<()>(&mut self.backend.conn())
            .await
            .map_err(|e| self.backend.error(e))
    }

    /// Waits until the flag is set: `Ok(false)` if the timeout elapsed first.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, IpcError> {
        set_within(
            self.backend
                .wait_until(&self.notify, timeout, || self.check())
                .await,
        )
    }

    /// Resolves when the flag is set. For pollables.
    pub async fn ready(&self) {
        self.backend
            .wait_forever(&self.notify, || self.check())
            .await
    }
}
