//! Redis faults injected (issue 16), beyond a restart: connections cut
//! mid-script and replies lost, by a small TCP proxy between the backend
//! and `redis-server`; and Redis paused (SIGSTOP) past a lock's lease.
//! Each delivery mode must keep the promise `docs/scale-out.md` makes, and
//! nothing may hang: every wait has a deadline.
//!
//! Needs `redis-server` (see `common::redis`).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::redis::Redis;
use corral::ipc::redis::{RedisBackend, RedisConfig};
use corral::ipc::{Backend, IpcError, Lock, Queue, QueueConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;

/// A wait the test expects to end well before: generous for a loaded machine.
const LONG: Duration = Duration::from_secs(20);

/// A TCP proxy in front of a `redis-server`'s unix socket that can cut every
/// connection at once, or lose the server's replies (each connection that
/// would carry one is closed instead, after the server ran the command).
struct Proxy {
    port: u16,
    cut: watch::Sender<u64>,
    lose_replies: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(socket: PathBuf) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(0u64);
        let lose_replies = Arc::new(AtomicBool::new(false));
        let (cuts, lose) = (cut.clone(), lose_replies.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = UnixStream::connect(&socket).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, cuts.subscribe(), lose.clone()));
            }
        });
        Proxy {
            port,
            cut,
            lose_replies,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Closes every open connection.
    fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    fn lose_replies(&self, lose: bool) {
        self.lose_replies.store(lose, Ordering::SeqCst);
    }
}

/// Copies bytes both ways until either side closes, a cut, or a reply to
/// lose.
async fn relay(
    client: TcpStream,
    server: UnixStream,
    mut cut: watch::Receiver<u64>,
    lose: Arc<AtomicBool>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let requests = async {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
            if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
            if lose.load(Ordering::SeqCst) || client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = replies => {}
        _ = cut.changed() => {}
    }
}

async fn backend(url: &str, ns: &str) -> Arc<RedisBackend> {
    let config = RedisConfig {
        outage_limit: Duration::from_secs(5),
        ..RedisConfig::new(url)
            .namespace(ns)
            .lease(Duration::from_secs(2))
    };
    RedisBackend::connect(config).await.expect("connect")
}

/// What a run of producers and consumers through faults saw.
#[derive(Default)]
struct Seen {
    /// Puts that said `Ok`.
    put: HashSet<u32>,
    /// Puts that failed, or whose fate is unknown (`unavailable`).
    maybe_put: HashSet<u32>,
    /// Every delivery, in order.
    got: Vec<u32>,
}

/// One producer and two consumers through the proxy for `period` while
/// connections are cut and replies lost; then the faults stop, the
/// consumers end, and a clean consumer drains the queue until `join`.
async fn run_through_faults(acknowledged: bool) -> (Seen, u64) {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.socket()).await;
    let faulty = Backend::Redis(backend(&proxy.url(), "faults").await);
    let config = QueueConfig {
        capacity: 64,
        acknowledged,
        ..QueueConfig::default()
    };
    let q = Queue::new(&faulty, "jobs", config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn({
        let (q, stop) = (q.clone(), stop.clone());
        async move {
            let h = q.handle();
            let mut seen = Seen::default();
            let mut id = 0u32;
            while !stop.load(Ordering::SeqCst) {
                match h
                    .put(id.to_le_bytes().to_vec(), Some(Duration::from_secs(2)))
                    .await
                {
                    Ok(()) => seen.put.insert(id),
                    Err(_) => seen.maybe_put.insert(id),
                };
                id += 1;
            }
            seen
        }
    });
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, stop) = (q.clone(), stop.clone());
            tokio::spawn(async move {
                let h = q.handle();
                let mut got = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(messages) = h.get_many(8, Some(Duration::from_millis(300))).await {
                        for m in messages {
                            got.push(u32::from_le_bytes(m[..].try_into().unwrap()));
                            h.task_done().unwrap();
                        }
                    }
                }
                got
            })
        })
        .collect();
    let started = Instant::now();
    let mut round = 0u32;
    while started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        match round % 2 {
            0 => proxy.cut_all(),
            _ => {
                proxy.lose_replies(true);
                tokio::time::sleep(Duration::from_millis(30)).await;
                proxy.lose_replies(false);
            }
        }
        round += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let mut seen = tokio::time::timeout(LONG, producer)
        .await
        .expect("hung: the producer")
        .unwrap();
    for c in consumers {
        let got = tokio::time::timeout(LONG, c)
            .await
            .expect("hung: a consumer");
        seen.got.extend(got.unwrap());
    }
    // The consumers' handles are gone: a Redis handle settles what it took
    // in the background (puts it back, or counts it lost).
    let drainer = q.handle();
    let deadline = Instant::now() + LONG;
    loop {
        match drainer.get_many(64, Some(Duration::from_millis(200))).await {
            Ok(messages) => {
                for m in messages {
                    seen.got.push(u32::from_le_bytes(m[..].try_into().unwrap()));
                    drainer.task_done().unwrap();
                }
            }
            Err(IpcError::Timeout) if q.join(Some(Duration::from_millis(200))).await.is_ok() => {
                break;
            }
            Err(IpcError::Timeout) => {}
            Err(e) => panic!("draining: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "join never returned after the faults"
        );
    }
    let lost = q.lost().await;
    assert!(round > 10, "faults were injected");
    (seen, lost)
}

/// At most once: nothing is delivered twice however the connection fails;
/// what was put and not delivered was counted lost; `join` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_through_cut_connections_and_lost_replies() {
    let (seen, lost) = run_through_faults(false).await;
    let got: HashSet<u32> = seen.got.iter().copied().collect();
    assert_eq!(got.len(), seen.got.len(), "a message was delivered twice");
    assert!(
        got.iter()
            .all(|id| seen.put.contains(id) || seen.maybe_put.contains(id))
    );
    let undelivered = seen.put.difference(&got).count() as u64;
    assert!(
        undelivered <= lost,
        "{undelivered} messages put were neither delivered nor counted lost ({lost})"
    );
    assert!(
        seen.put.len() > 20,
        "the run made progress: {} put",
        seen.put.len()
    );
}

/// Acknowledged: every message put is delivered (some twice), none lost;
/// `join` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_through_cut_connections_and_lost_replies() {
    let (seen, lost) = run_through_faults(true).await;
    let got: HashSet<u32> = seen.got.iter().copied().collect();
    let missing: Vec<u32> = seen.put.difference(&got).copied().collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert!(
        got.iter()
            .all(|id| seen.put.contains(id) || seen.maybe_put.contains(id))
    );
    assert_eq!(lost, 0);
    assert!(
        seen.put.len() > 20,
        "the run made progress: {} put",
        seen.put.len()
    );
}

/// A holder whose Redis pauses past its lease loses the lock: the next
/// holder is told and gets a larger fencing token, and the stale holder's
/// late release does not free the new holder's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_redis_pauses_past_its_lease_moves_on_with_a_larger_token() {
    let redis = Redis::start();
    let lease = Duration::from_millis(600);
    let host_a = Backend::Redis(redis.backend("paused", lease).await);
    let host_b = Backend::Redis(redis.backend("paused", lease).await);
    let lock_a = Lock::new(&host_a, "l", false).unwrap();
    let lock_b = Lock::new(&host_b, "l", false).unwrap();
    let stale = lock_a.acquire(1, Some(LONG)).await.unwrap();
    redis.signal("-STOP");
    tokio::time::sleep(lease * 2).await;
    redis.signal("-CONT");
    let next = tokio::time::timeout(LONG, lock_b.acquire(2, Some(LONG)))
        .await
        .expect("hung: the acquire after the pause")
        .expect("the lease expired: the lock is free");
    assert!(next.previous_owner_died(), "the next holder is told");
    assert!(next.fencing_token() > stale.fencing_token());
    stale.release().await;
    assert!(
        lock_b.try_acquire(3).await.unwrap().is_none(),
        "a stale holder's release freed the new holder's lock"
    );
    next.release().await;
    assert!(lock_b.try_acquire(3).await.unwrap().is_some());
}
