//! A bounded semaphore in Redis: one counter key, created at its initial
//! value by whichever host uses it first. As locally, permits are not owned:
//! a permit taken by a worker that dies (or whose host dies) is not given
//! back by itself.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use tokio::sync::Notify;

use super::over_released;
use crate::ipc::IpcError;
use crate::ipc::backend::redis::{Attempt, RedisBackend, check_name};

/// KEYS: counter, waiting marker. ARGV: initial. 1 if a permit was taken,
/// else 0 and the marker is left.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if v > 0 then
  redis.call('SET', KEYS[1], v - 1)
  return 1
end
redis.call('SET', KEYS[2], 1)
return 0
",
    )
});

/// KEYS: counter, waiting marker. ARGV: initial, max, channel. 1, or -1
/// past the bound.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if v >= tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], v + 1)
if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[3], 'released') end
return 1
",
    )
});

/// A named bounded semaphore in Redis.
pub struct RedisSemaphore {
    backend: Arc<RedisBackend>,
    name: String,
    initial: u32,
    max: u32,
    key: String,
    waiting: String,
    channel: String,
    notify: Arc<Notify>,
}

impl RedisSemaphore {
    /// Attaches to (or creates) the semaphore `name`. Does no I/O.
    pub fn new(
        backend: &Arc<RedisBackend>,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<RedisSemaphore>, IpcError> {
        check_name("semaphore", name)?;
        let key = |suffix: &str| backend.key("sem", name, suffix);
        let channel = key(":ch");
        Ok(Arc::new(RedisSemaphore {
            notify: backend.channel(&channel),
            backend: backend.clone(),
            name: name.to_string(),
            initial,
            max: max.max(initial),
            key: key(""),
            waiting: key(":waiting"),
            channel,
        }))
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Permits free now; 0 if Redis cannot be reached. One round trip, on
    /// async I/O (it holds no thread while it waits).
    pub async fn value(&self) -> u32 {
        let value = ::redis::cmd("GET")
            .arg(&self.key)
            .query_async::<Option<u32>>(&mut self.backend.conn())
            .await;
        value.map_or(0, |v| v.unwrap_or(self.initial))
    }

    async fn attempt(&self) -> Attempt<()> {
        let taken = ACQUIRE
            .key(&self.key)
            .key(&self.waiting)
            .arg(self.initial)
            .invoke_async::<u8>(&mut self.backend.conn())
            .await;
        match taken {
            Ok(1) => Attempt::Done(()),
            Ok(_) => Attempt::Wait,
            // A lost answer may have taken a permit: not repeated.
            Err(e) => self.backend.failed(e, false),
        }
    }

    /// Takes a permit if one is free now: one round trip, on async I/O.
    ///
    /// Cancel safety: as [`RedisSemaphore::acquire`].
    pub async fn try_acquire(&self) -> Result<bool, IpcError> {
        let taken = self.attempt().await.now()?;
        Ok(taken.is_some())
    }

    /// Takes a permit, waiting for one.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<(), IpcError> {
        self.backend
            .wait_until(&self.notify, timeout, || self.attempt())
            .await
    }

    /// Returns a permit: `invalid` past the bound. One round trip, on
    /// async I/O.
    ///
    /// Cancel safety: if this future is dropped, the permit may have been
    /// returned.
    pub async fn release(&self) -> Result<(), IpcError> {
        let answer = RELEASE
            .key(&self.key)
            .key(&self.waiting)
            .arg(self.initial)
            .arg(self.max)
            .arg(&self.channel)
            .invoke_async::<i64>(&mut self.backend.conn())
            .await
            .map_err(|e| self.backend.error(e))?;
        match answer {
            1 => Ok(()),
            _ => Err(over_released(&self.name, self.max)),
        }
    }

    /// Resolves when a permit is free. For pollables.
    pub async fn ready(&self) {
        self.backend
            .wait_forever(&self.notify, || async {
                let value = ::redis::pipe()
                    .get(&self.key)
                    .set(&self.waiting, 1)
                    .ignore()
                    .query_async::<(Option<u32>,)>(&mut self.backend.conn())
                    .await;
                match value {
                    Ok((v,)) if v.unwrap_or(self.initial) > 0 => Attempt::Done(()),
                    Ok(_) => Attempt::Wait,
                    Err(e) => self.backend.failed(e, true),
                }
            })
            .await
    }
}
