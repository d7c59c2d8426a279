//! A lock in Redis: `SET key token NX PX lease`, renewed while its holder
//! lives, released by compare-and-delete, with a fencing token (an `INCR`
//! counter) per acquisition.
//!
//! Robustness as locally: a `held` key names the last holder until it
//! releases normally. An acquirer that finds it still there learns that the
//! previous owner ended inside the critical section (its worker died, or its
//! host died and the lease expired).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ::redis::Script;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use super::relock;
use crate::ipc::backend::redis::{Attempt, RedisBackend, check_name, unique};
use crate::ipc::{IpcError, WorkerId};

/// KEYS: lock, fence counter, held marker, waiting marker. ARGV: token,
/// lease (ms). Returns {fence, previous owner died} or nil (held).
/// Idempotent for one token: a retried acquire that had succeeded finds
/// its own token.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return {tonumber(redis.call('GET', KEYS[2]) or 0), 0}
end
if holder then
  redis.call('SET', KEYS[4], 1)
  return false
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local fence = redis.call('INCR', KEYS[2])
local died = redis.call('EXISTS', KEYS[3])
redis.call('SET', KEYS[3], ARGV[1])
return {fence, died}
",
    )
});

/// KEYS: lock, held marker, waiting marker. ARGV: token, channel, normal
/// (1) or abandoned (0). Deletes the lock only if this token holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('DEL', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[2], 'free') end
return 1
",
    )
});

/// KEYS: lock. ARGV: token, lease (ms). 1 if still held and extended.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// KEYS: lock, waiting marker. 1 if free, else leaves the marker.
static FREE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
redis.call('SET', KEYS[2], 1)
return 0
",
    )
});

/// A named lock in Redis, shared by every host of the namespace.
pub struct RedisLock {
    backend: Arc<RedisBackend>,
    name: String,
    reentrant: bool,
    key: String,
    fence: String,
    held: String,
    waiting: String,
    channel: String,
    notify: Arc<Notify>,
    /// This host's hold on it, if a worker of this host has it.
    holder: Mutex<Option<Holder>>,
    /// Releases by this host's workers still on their way to Redis.
    releasing: Arc<Releasing>,
}

/// Counts a lock's releases on their way to Redis, so that this host's
/// next acquire waits for them instead of finding the released token there
/// (and waiting for its lease).
#[derive(Default)]
struct Releasing {
    count: AtomicUsize,
    settled: Notify,
}

impl Releasing {
    /// Counts one release until the returned mark is dropped: when its task
    /// ends, or is aborted.
    fn start(self: &Arc<Self>) -> ReleaseMark {
        self.count.fetch_add(1, Ordering::AcqRel);
        ReleaseMark(self.clone())
    }

    /// Resolves when no release is on its way.
    async fn settled(&self) {
        loop {
            let settled = self.settled.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }
}

/// One release on its way to Redis (see [`Releasing::start`]).
struct ReleaseMark(Arc<Releasing>);

impl Drop for ReleaseMark {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

struct Holder {
    worker: WorkerId,
    token: String,
    depth: u32,
    fence: u64,
    renewal: AbortHandle,
}

impl RedisLock {
    /// Attaches to (or creates) the lock `name`. Does no I/O.
    pub fn new(
        backend: &Arc<RedisBackend>,
        name: &str,
        reentrant: bool,
    ) -> Result<Arc<RedisLock>, IpcError> {
        check_name("lock", name)?;
        let key = |suffix: &str| backend.key("lock", name, suffix);
        let channel = key(":ch");
        Ok(Arc::new(RedisLock {
            notify: backend.channel(&channel),
            backend: backend.clone(),
            name: name.to_string(),
            reentrant,
            key: key(""),
            fence: key(":fence"),
            held: key(":held"),
            waiting: key(":waiting"),
            channel,
            holder: Mutex::new(None),
            releasing: Arc::default(),
        }))
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its holder may take it again.
    pub fn is_reentrant(&self) -> bool {
        self.reentrant
    }

    /// The worker of this host holding it, if any (holders on other hosts
    /// are not known here).
    pub fn owner(&self) -> Option<WorkerId> {
        self.lock_holder().as_ref().map(|h| h.worker)
    }

    fn lock_holder(&self) -> std::sync::MutexGuard<'_, Option<Holder>> {
        self.holder.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease_ms(&self) -> u64 {
        self.backend.config().lease.as_millis() as u64
    }

    /// The holder taking it again (re-entrant) needs no round trip.
    fn reenter(self: &Arc<Self>, worker: WorkerId) -> Result<Option<RedisGuard>, IpcError> {
        let mut holder = self.lock_holder();
        match holder.as_mut() {
            Some(h) if h.worker == worker => {
                if !self.reentrant {
                    return Err(relock(&self.name));
                }
                h.depth += 1;
                Ok(Some(self.guard(worker, h.fence, false)))
            }
            _ => Ok(None),
        }
    }

    async fn attempt(self: &Arc<Self>, worker: WorkerId, token: &str) -> Attempt<RedisGuard> {
        match self.reenter(worker) {
            Ok(Some(guard)) => return Attempt::Done(guard),
            Ok(None) => {}
            Err(e) => return Attempt::Fail(e),
        }
        let answer = ACQUIRE
            .key(&self.key)
            .key(&self.fence)
            .key(&self.held)
            .key(&self.waiting)
            .arg(token)
            .arg(self.lease_ms())
            .invoke_async::<Option<(u64, u8)>>(&mut self.backend.conn())
            .await;
        match answer {
            Ok(Some((fence, died))) => Attempt::Done(self.hold(worker, token, fence, died == 1)),
            Ok(None) => Attempt::Wait,
            Err(e) => self.backend.failed(e, true),
        }
    }

    /// Records this host's hold and starts renewing the lease.
    fn hold(self: &Arc<Self>, worker: WorkerId, token: &str, fence: u64, died: bool) -> RedisGuard {
        let lock = Arc::downgrade(self);
        let token_owned = token.to_string();
        let every = self.backend.config().lease / 3;
        let renewal = self.backend.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(lock) = lock.upgrade() else { return };
                let renewed = RENEW
                    .key(&lock.key)
                    .arg(&token_owned)
                    .arg(lock.lease_ms())
                    .invoke_async::<u8>(&mut lock.backend.conn())
                    .await;
                match renewed {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::warn!(
                            "corral: lost the lease of lock `{}`: another holder may have it \
                             (fencing tokens tell stale writers apart)",
                            lock.name
                        );
                        return;
                    }
                    Err(e) => tracing::debug!("renewing lock `{}`: {e}", lock.name),
                }
            }
        });
        *self.lock_holder() = Some(Holder {
            worker,
            token: token.to_string(),
            depth: 1,
            fence,
            renewal,
        });
        self.guard(worker, fence, died)
    }

    fn token(&self, worker: WorkerId) -> String {
        format!("{}:{worker}:{:016x}", self.backend.host_id(), unique())
    }

    /// Takes the lock for `worker` if it is free now: one round trip, on
    /// async I/O (it holds no thread while it waits).
    ///
    /// Cancel safety: as [`RedisLock::acquire`].
    pub async fn try_acquire(
        self: &Arc<Self>,
        worker: WorkerId,
    ) -> Result<Option<RedisGuard>, IpcError> {
        self.releasing.settled().await;
        let token = self.token(worker);
        self.attempt(worker, &token).await.now()
    }

    /// Takes the lock for `worker`, waiting while anyone (on any host)
    /// holds it.
    pub async fn acquire(
        self: &Arc<Self>,
        worker: WorkerId,
        timeout: Option<Duration>,
    ) -> Result<RedisGuard, IpcError> {
        self.releasing.settled().await;
        let token = self.token(worker);
        let acquired = self
            .backend
            .wait_until(&self.notify, timeout, || self.attempt(worker, &token))
            .await;
        if let Err(IpcError::Unavailable(_)) = acquired {
            // A try whose answer was lost may have taken it: give it back.
            self.release_in_background(&token, true);
        }
        acquired
    }

    /// Resolves when the lock is free. For pollables.
    pub async fn ready(&self) {
        self.releasing.settled().await;
        self.backend
            .wait_forever(&self.notify, || async {
                let answer = FREE
                    .key(&self.key)
                    .key(&self.waiting)
                    .invoke_async::<u8>(&mut self.backend.conn())
                    .await;
                match answer {
                    Ok(1) => Attempt::Done(()),
                    Ok(_) => Attempt::Wait,
                    Err(e) => self.backend.failed(e, true),
                }
            })
            .await
    }

    fn guard(self: &Arc<Self>, owner: WorkerId, fence: u64, died: bool) -> RedisGuard {
        RedisGuard {
            lock: self.clone(),
            owner,
            fence,
            previous_owner_died: died,
            released: false,
        }
    }

    /// Gives up one level of this host's hold: the token to delete once
    /// the last level is gone, with its renewal stopped.
    fn let_go(&self) -> Option<String> {
        let mut holder = self.lock_holder();
        match holder.as_mut() {
            Some(h) if h.depth > 1 => {
                h.depth -= 1;
                None
            }
            _ => holder.take().map(|h| {
                h.renewal.abort();
                h.token
            }),
        }
    }

    /// A worker's own release: it waits for the answer, so the worker's
    /// next acquire finds the lock free.
    async fn unlock(&self) {
        let Some(token) = self.let_go() else { return };
        if let Err(e) = self.release_token(&token, true).await {
            tracing::warn!(
                "corral: cannot release lock `{}`: {e}; its lease will expire",
                self.name
            );
        }
    }

    /// A worker's own release, without waiting: it goes to Redis in the
    /// background, and this host's acquires wait for it (see
    /// [`Releasing`]). The handle resolves once Redis answered.
    fn unlock_soon(&self) -> Option<JoinHandle<()>> {
        let token = self.let_go()?;
        let mark = self.releasing.start();
        let release = self.release_token(&token, true);
        let name = self.name.clone();
        Some(self.backend.spawn_joinable(async move {
            if let Err(e) = release.await {
                tracing::warn!("corral: cannot release lock `{name}`: {e}; its lease will expire");
            }
            drop(mark);
        }))
    }

    /// The worker ended holding it (or a lost answer may have given it the
    /// lock): the release goes in the background.
    fn release_in_background(&self, token: &str, normal: bool) {
        let release = self.release_token(token, normal);
        let name = self.name.clone();
        self.backend.spawn(async move {
            if let Err(e) = release.await {
                tracing::debug!("freeing lock `{name}`: {e} (its lease will expire)");
            }
        });
    }

    /// Deletes the lock if `token` holds it; `normal` also clears the
    /// holder marker. Owns what it needs, so that it can outlive `self`.
    fn release_token(
        &self,
        token: &str,
        normal: bool,
    ) -> impl Future<Output = Result<(), IpcError>> + Send + 'static {
        let (backend, key, held, waiting, channel) = (
            self.backend.clone(),
            self.key.clone(),
            self.held.clone(),
            self.waiting.clone(),
            self.channel.clone(),
        );
        let token = token.to_string();
        async move {
            RELEASE
                .key(&key)
                .key(&held)
                .key(&waiting)
                .arg(&token)
                .arg(&channel)
                .arg(u8::from(normal))
                .invoke_async::<u8>(&mut backend.conn())
                .await
                .map(drop)
                .map_err(|e| backend.error(e))
        }
    }
}

/// Holding a Redis lock. As a local guard: release it, or dropping it means
/// its worker ended inside the critical section.
pub struct RedisGuard {
    lock: Arc<RedisLock>,
    owner: WorkerId,
    fence: u64,
    previous_owner_died: bool,
    released: bool,
}

impl RedisGuard {
    /// Whether the previous holder ended (or its host died) while holding it.
    pub fn previous_owner_died(&self) -> bool {
        self.previous_owner_died
    }

    /// This acquisition's fencing token: larger than every earlier holder's,
    /// on any host.
    pub fn fencing_token(&self) -> u64 {
        self.fence
    }

    /// The worker holding it.
    pub fn owner(&self) -> WorkerId {
        self.owner
    }

    /// The lock.
    pub fn lock(&self) -> &Arc<RedisLock> {
        &self.lock
    }

    /// Releases the lock normally, waiting for Redis's answer (on async
    /// I/O, holding no thread).
    ///
    /// Cancel safety: if this future is dropped before its first poll, the
    /// lock is released as abandoned (as a drop of the guard); after it, the
    /// release may not have reached Redis, and the lease expires.
    pub async fn release(mut self) {
        self.released = true;
        self.lock.unlock().await;
    }

    /// Releases the lock normally without waiting for Redis: this host's
    /// next acquire of it waits for the release instead. Returns what
    /// resolves once Redis answered (`None` if a re-entrant hold remains).
    pub fn release_soon(mut self) -> Option<JoinHandle<()>> {
        self.released = true;
        self.lock.unlock_soon()
    }
}

impl Drop for RedisGuard {
    fn drop(&mut self) {
        if !self.released
            && let Some(token) = self.lock.let_go()
        {
            self.lock.release_in_background(&token, false);
        }
    }
}
