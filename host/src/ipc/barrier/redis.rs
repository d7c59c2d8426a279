//! A barrier in Redis: one hash holds the parties that arrived in the
//! current round, the round number and whether it is broken. The last party
//! to arrive starts the next round and records that this round completed,
//! so waiters tell a completed round from a reset one.
//!
//! A party whose host is killed while it waits does not break the barrier
//! (nothing notices it is gone): the others' timeouts do.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use tokio::sync::Notify;

use crate::ipc::IpcError;
use crate::ipc::backend::redis::{Attempt, RedisBackend, check_name, int};

/// KEYS: barrier. ARGV: parties, channel. Returns {index, round, last} or
/// -1 if broken.
static ARRIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'broken') == '1' then return -1 end
local arrived = redis.call('HINCRBY', KEYS[1], 'arrived', 1)
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or 0)
if arrived >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'arrived', 0, 'round', round + 1, 'done:' .. round, 1)
  redis.call('HDEL', KEYS[1], 'done:' .. (round - 100))
  redis.call('PUBLISH', ARGV[2], 'round')
  return {arrived - 1, round, 1}
end
return {arrived - 1, round, 0}
",
    )
});

/// KEYS: barrier. ARGV: round. Returns 1 (round completed), -1 (broken or
/// reset) or 0 (still waiting).
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], 'done:' .. ARGV[1]) == 1 then return 1 end
if redis.call('HGET', KEYS[1], 'broken') == '1' then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'round') or 0) ~= tonumber(ARGV[1]) then return -1 end
return 0
",
    )
});

/// KEYS: barrier. ARGV: channel, round (-1: any), only if parties wait
/// (1/0). Breaks the barrier. Returns 1 if it did.
static BREAK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or 0)
if ARGV[2] ~= '-1' and round ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '1' and tonumber(redis.call('HGET', KEYS[1], 'arrived') or 0) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'broken', 1)
redis.call('PUBLISH', ARGV[1], 'broken')
return 1
",
    )
});

/// KEYS: barrier. ARGV: channel. A new round, not broken.
static RESET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or 0)
redis.call('HSET', KEYS[1], 'arrived', 0, 'round', round + 1, 'broken', 0)
redis.call('PUBLISH', ARGV[1], 'reset')
return 1
",
    )
});

/// A named barrier in Redis for a fixed number of parties, on any hosts.
pub struct RedisBarrier {
    backend: Arc<RedisBackend>,
    name: String,
    parties: u32,
    key: String,
    channel: String,
    notify: Arc<Notify>,
}

impl RedisBarrier {
    /// Attaches to (or creates) the barrier `name`. Does no I/O.
    pub fn new(
        backend: &Arc<RedisBackend>,
        name: &str,
        parties: u32,
    ) -> Result<Arc<RedisBarrier>, IpcError> {
        check_name("barrier", name)?;
        let channel = backend.key("bar", name, ":ch");
        Ok(Arc::new(RedisBarrier {
            notify: backend.channel(&channel),
            backend: backend.clone(),
            name: name.to_string(),
            parties: parties.max(1),
            key: backend.key("bar", name, ""),
            channel,
        }))
    }

    /// The barrier's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many parties must arrive.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// A field of the barrier's hash; `None` if Redis cannot be reached.
    /// One round trip, on async I/O (it holds no thread while it waits).
    async fn field(&self, field: &str) -> Option<u64> {
        ::redis::cmd("HGET")
            .arg(&self.key)
            .arg(field)
            .query_async::<Option<u64>>(&mut self.backend.conn())
            .await
            .ok()
            .flatten()
    }

    /// Parties waiting now (on every host); 0 if Redis cannot be reached.
    pub async fn waiting(&self) -> u32 {
        self.field("arrived").await.unwrap_or(0) as u32
    }

    /// Whether it is broken.
    pub async fn is_broken(&self) -> bool {
        self.field("broken").await == Some(1)
    }

    /// The round in progress.
    pub async fn round(&self) -> u64 {
        self.field("round").await.unwrap_or(0)
    }

    async fn send_break(&self, round: Option<u64>, only_if_waiting: bool) -> Result<(), IpcError> {
        BREAK
            .key(&self.key)
            .arg(&self.channel)
            .arg(round.map_or(-1, |r| r as i64))
            .arg(u8::from(only_if_waiting))
            .invoke_async::<u8>(&mut self.backend.conn())
            .await
            .map(drop)
            .map_err(|e| self.backend.error(e))
    }

    /// Breaks it for every waiter on every host. One round trip, on async
    /// I/O.
    pub async fn abort(&self) -> Result<(), IpcError> {
        self.send_break(None, false).await
    }

    /// Mends it for a new round; waiters of the current round get `broken`.
    /// One round trip, on async I/O.
    pub async fn reset(&self) -> Result<(), IpcError> {
        RESET
            .key(&self.key)
            .arg(&self.channel)
            .invoke_async::<u8>(&mut self.backend.conn())
            .await
            .map(drop)
            .map_err(|e| self.backend.error(e))
    }

    async fn check(&self, round: u64) -> Attempt<()> {
        let state = CHECK
            .key(&self.key)
            .arg(round)
            .invoke_async::<i64>(&mut self.backend.conn())
            .await;
        match state {
            Ok(1) => Attempt::Done(()),
            Ok(0) => Attempt::Wait,
            Ok(_) => Attempt::Fail(IpcError::Broken),
            Err(e) => self.backend.failed(e, true),
        }
    }

    /// Resolves when round `round` is over or the barrier is broken.
    pub async fn ready_after(&self, round: u64) {
        while let Err(IpcError::Unavailable(_)) = self
            .backend
            .wait_until(&self.notify, None, || self.check(round))
            .await
        {}
    }

    /// Opens a handle for one worker.
    pub fn handle(self: &Arc<Self>) -> RedisBarrierHandle {
        RedisBarrierHandle {
            barrier: self.clone(),
            took_part: false,
        }
    }
}

/// Breaks the barrier if a party goes away mid-wait.
struct Arrival<'a> {
    barrier: &'a Arc<RedisBarrier>,
    round: u64,
    done: bool,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if !self.done {
            let barrier = self.barrier.clone();
            let round = self.round;
            self.barrier.backend.spawn(async move {
                let _ = barrier.send_break(Some(round), false).await;
            });
        }
    }
}

/// One worker's use of a Redis barrier.
pub struct RedisBarrierHandle {
    barrier: Arc<RedisBarrier>,
    took_part: bool,
}

impl RedisBarrierHandle {
    /// The barrier.
    pub fn barrier(&self) -> &Arc<RedisBarrier> {
        &self.barrier
    }

    /// Arrives and waits for the other parties: this worker's arrival index.
    /// A timeout breaks the barrier for everyone.
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<u32, IpcError> {
        self.took_part = true;
        let barrier = &self.barrier;
        let arrived = ARRIVE
            .key(&barrier.key)
            .arg(barrier.parties)
            .arg(&barrier.channel)
            .invoke_async::<::redis::Value>(&mut barrier.backend.conn())
            .await
            .map_err(|e| barrier.backend.error(e))?;
        let (index, round, last) = match arrived {
            ::redis::Value::Array(v) if v.len() == 3 => {
                let n = |i: usize| int(&v[i]).unwrap_or(0);
                (n(0) as u32, n(1) as u64, n(2) == 1)
            }
            _ => return Err(IpcError::Broken),
        };
        if last {
            return Ok(index);
        }
        let mut arrival = Arrival {
            barrier,
            round,
            done: false,
        };
        let result = barrier
            .backend
            .wait_until(&barrier.notify, timeout, || barrier.check(round))
            .await;
        // A pass or a break is done; a timeout or an outage breaks it.
        arrival.done = matches!(result, Ok(()) | Err(IpcError::Broken));
        result.map(|()| index)
    }
}

impl Drop for RedisBarrierHandle {
    fn drop(&mut self) {
        let barrier = self.barrier.clone();
        let took_part = self.took_part;
        self.barrier.backend.spawn(async move {
            let _ = barrier.send_break(None, !took_part).await;
        });
    }
}
