//! The Redis backend's plumbing. Named queues, locks, semaphores, events
//! and barriers can live in a Redis server (each in its `<object>/redis.rs`)
//! so that the workers of several Corral hosts (processes, machines) share
//! them; this file is what they all use. `docs/scale-out.md` has the model
//! and the guarantees. Plain async Rust and the `redis` crate: nothing from
//! wasmtime, the WIT bindings or the worker runtime.
//!
//! - One [`RedisBackend`] per run: a multiplexed, self-reconnecting command
//!   connection, and a second connection subscribed to the namespace's
//!   notification channels (RESP3 push messages).
//! - Every state change that someone may wait for is one Lua script (atomic
//!   on the server) that also publishes on the object's channel when a
//!   waiter left a marker. Waiters check, then sleep until a notification or
//!   a short poll interval (a notification lost in a reconnect costs one
//!   interval, never a hang).
//! - Each host holds a lease (`<prefix>host:<id>`, renewed while it lives).
//!   What a host claims (in-flight messages, lock leases) is reclaimed by the
//!   other hosts once that lease has expired.
//! - Keys are `corral:<namespace>:<kind>:{<name>}...`: a namespace keeps
//!   deployments apart, and the braces keep an object's keys together.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncConnectionConfig, Client, ProtocolVersion, PushKind, RedisError, Value};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::ipc::IpcError;

/// How to reach Redis, which namespace to use and how long leases last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Keeps deployments (tenants) sharing one server apart: objects of
    /// different namespaces never meet.
    pub namespace: String,
    /// How long a host's claims outlive it: the visibility timeout of
    /// messages taken from an acknowledged queue, and a lock's lease. A live
    /// host renews them every third of it.
    pub lease: Duration,
    /// How long a waiting call rides out a Redis outage (reconnecting with
    /// backoff) before it fails with `unavailable`.
    pub outage_limit: Duration,
}

impl RedisConfig {
    /// The default namespace.
    pub const DEFAULT_NAMESPACE: &'static str = "default";

    /// `url` with the default namespace, a 5 s lease and a 30 s outage limit.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: Self::DEFAULT_NAMESPACE.into(),
            lease: Duration::from_secs(5),
            outage_limit: Duration::from_secs(30),
        }
    }

    /// The same with another namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> RedisConfig {
        self.namespace = namespace.into();
        self
    }

    /// The same with another lease (visibility timeout).
    pub fn lease(mut self, lease: Duration) -> RedisConfig {
        self.lease = lease;
        self
    }
}

/// A connection to one Redis server and namespace, shared by the objects of
/// a run. Background tasks (lease renewal, notifications) end when it drops.
pub struct RedisBackend {
    config: RedisConfig,
    /// The URL without its password, for messages.
    address: String,
    /// `corral:<namespace>:`.
    prefix: String,
    /// Unique per backend (per host process and run).
    host_id: String,
    conn: ConnectionManager,
    /// Waiters by notification channel.
    channels: Mutex<HashMap<String, Weak<Notify>>>,
    runtime: Handle,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// How long a waiter sleeps without a notification before it checks again.
const POLL: Duration = Duration::from_millis(200);
/// How long one command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a (re)connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisBackend {
    /// Connects, checks that the server answers, subscribes to the
    /// namespace's notifications and takes this host's lease. Fails at once,
    /// naming the address, if Redis cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Arc<RedisBackend>, IpcError> {
        check_namespace(&config.namespace)?;
        if config.lease < Duration::from_millis(30) {
            return Err(IpcError::Invalid(format!(
                "a lease of {:?} is too short to renew",
                config.lease
            )));
        }
        let client = Client::open(config.url.as_str())
            .map_err(|e| IpcError::Invalid(format!("bad Redis URL `{}`: {e}", config.url)))?;
        let address = display_address(&config.url);
        let unreachable =
            |e: RedisError| IpcError::Unavailable(format!("cannot reach Redis at {address}: {e}"));
        // One plain attempt first: a clear error now beats retries.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut first = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(unreachable)?;
        ::redis::cmd("PING")
            .query_async::<()>(&mut first)
            .await
            .map_err(unreachable)?;
        drop(first);
        let manager_config = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_secs(1))
                .set_number_of_retries(4)
                .set_pipeline_buffer_size(4096)
        };
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(unreachable)?;
        let prefix = format!("corral:{}:", config.namespace);
        let backend = Arc::new(RedisBackend {
            host_id: format!("{:016x}", unique()),
            address: address.clone(),
            prefix: prefix.clone(),
            conn,
            channels: Mutex::new(HashMap::new()),
            runtime: Handle::current(),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        // Notifications: a RESP3 connection that pushes every message of the
        // namespace's channels, resubscribed after each reconnect.
        let info = client.get_connection_info().clone().set_redis_settings(
            client
                .get_connection_info()
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let (push_tx, mut push_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut events = ConnectionManager::new_with_config(
            Client::open(info).map_err(unreachable)?,
            manager_config()
                .set_push_sender(push_tx)
                .set_automatic_resubscription(),
        )
        .await
        .map_err(unreachable)?;
        events
            .psubscribe(format!("{prefix}*"))
            .await
            .map_err(unreachable)?;
        let weak = Arc::downgrade(&backend);
        let dispatch = tokio::spawn(async move {
            // Holds the subscribed connection for as long as it runs.
            let _events = events;
            while let Some(push) = push_rx.recv().await {
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                match push.kind {
                    PushKind::PMessage => {
                        if let Some(Value::BulkString(channel)) = push.data.get(1) {
                            backend.wake(&String::from_utf8_lossy(channel));
                        }
                    }
                    // Messages may have been missed: everyone checks again.
                    PushKind::Disconnection | PushKind::PSubscribe => backend.wake_all(),
                    _ => {}
                }
            }
        });
        backend.renew_lease().await?;
        let weak = Arc::downgrade(&backend);
        let every = backend.config.lease / 3;
        let lease = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = backend.renew_lease().await {
                    tracing::warn!("corral: cannot renew this host's Redis lease: {e}");
                }
            }
        });
        backend.keep_task(dispatch.abort_handle());
        backend.keep_task(lease.abort_handle());
        Ok(backend)
    }

    /// The server's address (without credentials), for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The settings this backend was made with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// This host's id, as it appears in lock tokens and in-flight lists.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    fn keep_task(&self, task: AbortHandle) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    async fn renew_lease(&self) -> Result<(), IpcError> {
        let key = format!("{}{}", self.lease_key_prefix(), self.host_id);
        let ms = self.config.lease.as_millis() as u64;
        ::redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))
    }

    /// The prefix of every host's lease key: `<prefix>host:`, followed by
    /// the host's id. Reapers check other hosts' leases with it.
    pub(crate) fn lease_key_prefix(&self) -> String {
        format!("{}host:", self.prefix)
    }

    /// The key of an object: `corral:<ns>:<kind>:{<name>}<suffix>`.
    pub(crate) fn key(&self, kind: &str, name: &str, suffix: &str) -> String {
        format!("{}{kind}:{{{name}}}{suffix}", self.prefix)
    }

    /// The notifications of channel `channel`: waiters wait on it.
    pub(crate) fn channel(&self, channel: &str) -> Arc<Notify> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = channels.get(channel).and_then(Weak::upgrade) {
            return notify;
        }
        channels.retain(|_, w| w.strong_count() > 0);
        let notify = Arc::new(Notify::new());
        channels.insert(channel.to_string(), Arc::downgrade(&notify));
        notify
    }

    fn wake(&self, channel: &str) {
        let notify = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
            .and_then(Weak::upgrade);
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        all.iter().for_each(|n| n.notify_waiters());
    }

    /// A connection for one command or script (a cheap clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Sets `key` to 1 and publishes `message` on `channel`, atomically:
    /// a flag that waiters on every host learn of at once (an event set, a
    /// queue closed). One round trip.
    pub(crate) async fn raise(
        &self,
        key: &str,
        channel: &str,
        message: &str,
    ) -> Result<(), IpcError> {
        ::redis::pipe()
            .atomic()
            .set(key, 1)
            .ignore()
            .publish(channel, message)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// A Redis error as an IPC error: connection trouble is `unavailable`
    /// (naming the server), anything else `invalid`.
    pub(crate) fn error(&self, e: RedisError) -> IpcError {
        if is_connection_error(&e) {
            IpcError::Unavailable(format!("Redis at {}: {e}", self.address))
        } else {
            IpcError::Invalid(format!("Redis at {}: {e}", self.address))
        }
    }

    /// Classifies the failure of an attempt: whether it may be tried again.
    /// `repeatable`: running the attempt twice does no harm, so a command
    /// whose outcome is unknown (the connection dropped after sending) may
    /// be sent again; otherwise only one that never left (refused).
    pub(crate) fn failed<T>(&self, e: RedisError, repeatable: bool) -> Attempt<T> {
        let retry = e.is_connection_refusal() || (repeatable && is_connection_error(&e));
        match (retry, self.error(e)) {
            (true, IpcError::Unavailable(why)) => Attempt::Retry(why),
            (_, error) => Attempt::Fail(error),
        }
    }

    /// Runs `attempt` until it succeeds, fails, or the timeout elapses:
    /// between attempts that say `Wait`, it sleeps until `notify` fires (or
    /// [`POLL`] passes); after a connection failure it backs off and tries
    /// again for at most the outage limit. A command in flight is never
    /// abandoned because of the timeout, so no attempt is half-done.
    pub(crate) async fn wait_until<T, F>(
        &self,
        notify: &Notify,
        timeout: Option<Duration>,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, IpcError>
    where
        F: Future<Output = Attempt<T>>,
    {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut outage: Option<Instant> = None;
        let mut backoff = Duration::from_millis(10);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = match attempt().await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::Wait => {
                    outage = None;
                    backoff = Duration::from_millis(10);
                    None
                }
                Attempt::Retry(why) => {
                    let since = *outage.get_or_insert_with(Instant::now);
                    let late = deadline.is_some_and(|d| Instant::now() >= d);
                    if late || since.elapsed() >= self.config.outage_limit {
                        return Err(IpcError::Unavailable(why));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    Some(backoff)
                }
            };
            let mut wait = pause.unwrap_or(POLL);
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Err(IpcError::Timeout);
                }
                wait = wait.min(deadline - now);
            }
            match pause {
                Some(_) => tokio::time::sleep(wait).await,
                None => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Waits until `attempt` succeeds, however long it takes and whatever
    /// fails meanwhile: readiness for pollables, which have no error
    /// channel (without Redis there is nothing to be ready for, so the
    /// guest's poll may time out instead).
    pub(crate) async fn wait_forever<F>(&self, notify: &Notify, mut attempt: impl FnMut() -> F)
    where
        F: Future<Output = Attempt<()>>,
    {
        while self.wait_until(notify, None, &mut attempt).await.is_err() {}
    }

    /// Runs `fut` in the background on the backend's runtime: cleanup from
    /// `Drop`, where nobody waits for the answer, and renewal loops, which
    /// their owner aborts.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) -> AbortHandle {
        self.runtime.spawn(fut).abort_handle()
    }

    /// As [`spawn`](Self::spawn), for background work that someone may
    /// wait for: a lock's release on its way to Redis.
    pub(crate) fn spawn_joinable(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.runtime.spawn(fut)
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("namespace", &self.config.namespace)
            .field("host", &self.host_id)
            .finish_non_exhaustive()
    }
}

/// One try of a waiting operation (see [`RedisBackend::wait_until`]).
pub(crate) enum Attempt<T> {
    /// It happened.
    Done(T),
    /// Not now: wait for a notification and try again.
    Wait,
    /// Redis could not be reached and trying again is safe.
    Retry(String),
    /// It failed for good.
    Fail(IpcError),
}

impl<T> Attempt<T> {
    /// The outcome of a call that does not wait: `Some` if it happened,
    /// `None` if it would have to wait.
    pub(crate) fn now(self) -> Result<Option<T>, IpcError> {
        match self {
            Attempt::Done(value) => Ok(Some(value)),
            Attempt::Wait => Ok(None),
            Attempt::Retry(why) => Err(IpcError::Unavailable(why)),
            Attempt::Fail(e) => Err(e),
        }
    }
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Namespaces become part of key names and of a channel pattern.
fn check_namespace(namespace: &str) -> Result<(), IpcError> {
    let bad = |c: char| c.is_whitespace() || ":{}*?[]\\".contains(c);
    if namespace.is_empty() || namespace.contains(bad) {
        return Err(IpcError::Invalid(format!(
            "namespace {namespace:?} must be non-empty, without spaces or any of : {{ }} * ? [ ] \\"
        )));
    }
    Ok(())
}

/// Object names become part of key names between braces.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), IpcError> {
    if name.contains(['{', '}']) {
        return Err(IpcError::Invalid(format!(
            "a Redis-backed {kind} name may not contain braces: `{name}`"
        )));
    }
    Ok(())
}

/// `url` without the password.
fn display_address(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A number no other backend, handle or lock acquisition has drawn, here or
/// (with overwhelming likelihood) on another host: the process's randomly
/// keyed hasher over the process id, the time and a counter.
pub(crate) fn unique() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Reads an integer reply.
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert!(check_namespace("tenant-a").is_ok());
        assert!(check_namespace("").is_err());
        assert!(check_namespace("a:b").is_err());
        assert!(check_namespace("a*").is_err());
        assert!(check_name("queue", "jobs").is_ok());
        assert!(check_name("queue", "j{obs").is_err());
        assert_eq!(
            display_address("redis://user:secret@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(display_address("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
