//! How many messages a Redis queue holds, for snapshots that must not wait
//! on the network: the last `LLEN` seen, refreshed every second in the
//! background while anyone has asked within the last half minute. A queue
//! nobody watches costs Redis nothing; a watched one, one `LLEN` a second
//! from this host.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::redis::RedisQueue;

/// How often a watched depth is read again.
const REFRESH: Duration = Duration::from_secs(1);
/// How long after the last request the refreshing goes on.
const WATCHED_FOR: Duration = Duration::from_secs(30);
/// Marks `last` as never read.
const UNKNOWN: u64 = u64::MAX;

/// The last known depth of one Redis queue.
pub(super) struct DepthWatch {
    created: Instant,
    /// Messages waiting at the last read ([`UNKNOWN`]: none succeeded).
    last: AtomicU64,
    /// Milliseconds after `created` until which someone wants the depth.
    wanted_until_ms: AtomicU64,
    /// A refresher task is running.
    running: AtomicBool,
}

impl Default for DepthWatch {
    fn default() -> Self {
        DepthWatch {
            created: Instant::now(),
            last: AtomicU64::new(UNKNOWN),
            wanted_until_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
        }
    }
}

impl DepthWatch {
    fn now_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64
    }
}

impl RedisQueue {
    /// The depth at the last background read, at most about a second old
    /// while someone keeps asking; `None` until a first read succeeded
    /// (the first request starts them). Never waits.
    pub fn depth_hint(self: &Arc<Self>) -> Option<u64> {
        let watch = self.depth_watch();
        let until = watch.now_ms() + WATCHED_FOR.as_millis() as u64;
        watch.wanted_until_ms.fetch_max(until, Ordering::Relaxed);
        if !watch.running.swap(true, Ordering::AcqRel) {
            let me = Arc::downgrade(self);
            self.spawn_background(refresh(me));
        }
        match watch.last.load(Ordering::Relaxed) {
            UNKNOWN => None,
            n => Some(n),
        }
    }
}

/// Reads the depth every [`REFRESH`] until nobody has asked for
/// [`WATCHED_FOR`] or the queue is gone. A failed read keeps the last value.
async fn refresh(queue: Weak<RedisQueue>) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        if let Some(n) = q.try_len().await {
            q.depth_watch().last.store(n as u64, Ordering::Relaxed);
        }
        let watch = q.depth_watch();
        if watch.now_ms() > watch.wanted_until_ms.load(Ordering::Relaxed) {
            watch.running.store(false, Ordering::Release);
            // A request that came in between saw `running` and started
            // nothing: go on for it.
            if watch.now_ms() > watch.wanted_until_ms.load(Ordering::Relaxed)
                || watch.running.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
        drop(q);
        tokio::time::sleep(REFRESH).await;
    }
}
