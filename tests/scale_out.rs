//! Several hosts sharing queues and locks through Redis (issue 10): two
//! `corral up` processes and this test (through the library) on one Redis
//! server that the test starts and stops (`common::redis`).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::child::{Bounded, output_within};
use common::redis::Redis;
use corral::Run;
use corral::ipc::redis::{RedisBackend, RedisConfig};
use corral::ipc::{Backend, IpcError, QueueConfig};

/// A namespace no other test uses.
fn namespace(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn guest(name: &str) -> String {
    common::guest(name).display().to_string()
}

/// A `corral up` of `manifest` (written to `dir`) on the test's Redis,
/// killed if dropped still running (a failed test).
struct Host {
    child: Bounded,
    name: String,
}

impl Host {
    fn start(dir: &Path, name: &str, manifest: &str, redis: &Redis, ns: &str) -> Host {
        let path: PathBuf = dir.join(format!("{name}.toml"));
        std::fs::write(&path, manifest).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
        command
            .arg("--cache-dir")
            .arg(common::shared_cache_dir())
            .args(["--color", "never", "up"])
            .arg(&path)
            .args(["--backend", &redis.url(), "--namespace", ns]);
        Host {
            child: Bounded::spawn(&mut command, b"", Duration::from_secs(300)),
            name: name.into(),
        }
    }

    /// Waits (bounded) for the host to exit; returns its exit code and output.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        self.child.set_deadline(limit);
        let output = self.child.finish();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    }

    fn assert_ok(self, limit: Duration) -> String {
        let name = self.name.clone();
        let (code, output) = self.finish(limit);
        assert_eq!(code, Some(0), "host {name}: {output}");
        output
    }

    /// SIGKILL: the host ends without any cleanup.
    fn kill(self) {
        self.child.kill();
    }
}

/// FNV-1a, as the guests compute it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the producers put: `<worker>:<i>` for each worker name.
fn expected(producers: &[&str], each: u64) -> (HashSet<Vec<u8>>, u64) {
    let mut all = HashSet::new();
    let mut sum = 0u64;
    for p in producers {
        for i in 0..each {
            let m = format!("{p}:{i}").into_bytes();
            sum = sum.wrapping_add(fnv1a(&m));
            all.insert(m);
        }
    }
    (all, sum)
}

const BIG: QueueConfig = QueueConfig {
    capacity: 1_000_000,
    max_message: 1 << 20,
    max_bytes: 1 << 30,
    acknowledged: false,
};

/// Reads `out` until `want` distinct messages arrived (bounded by `limit`),
/// calling `progress` with the distinct count after each batch. Returns the
/// distinct messages, their checksum and how many arrived twice.
async fn drain(
    run: &Run,
    want: usize,
    limit: Duration,
    mut progress: impl FnMut(usize),
) -> (HashSet<Vec<u8>>, u64, u64) {
    let out = run.objects().queue("out").unwrap().handle();
    let deadline = Instant::now() + limit;
    let (mut seen, mut sum, mut duplicates) = (HashSet::new(), 0u64, 0u64);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} messages arrived in {limit:?}",
            seen.len()
        );
        match out.get_many(1000, Some(Duration::from_millis(500))).await {
            Ok(batch) => {
                for m in batch {
                    out.task_done().unwrap();
                    if seen.insert(m.to_vec()) {
                        sum = sum.wrapping_add(fnv1a(&m));
                    } else {
                        duplicates += 1;
                    }
                }
                progress(seen.len());
            }
            Err(IpcError::Timeout) => {}
            Err(e) => panic!("reading out: {e}"),
        }
    }
    (seen, sum, duplicates)
}

/// Reads `out` for `period`, asserting that everything arriving is already
/// in `seen`; returns how many arrived.
async fn drain_for(run: &Run, seen: &HashSet<Vec<u8>>, period: Duration) -> u64 {
    let out = run.objects().queue("out").unwrap().handle();
    let deadline = Instant::now() + period;
    let mut again = 0u64;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match out
            .get_many(1000, Some(left.min(Duration::from_millis(200))))
            .await
        {
            Ok(batch) => {
                for m in batch {
                    out.task_done().unwrap();
                    assert!(seen.contains(&m[..]), "a message no producer put");
                    again += 1;
                }
            }
            Err(IpcError::Timeout) => {}
            Err(e) => panic!("reading out: {e}"),
        }
    }
    again
}

/// Host `host`'s manifest: two relays from `jobs` to `out` (pausing
/// `pause_ms` between relaying a batch and marking it done) and `producers`
/// producers of `each` messages.
fn relay_manifest(
    host: &str,
    producers: u32,
    each: u64,
    acknowledged: bool,
    lease: &str,
    pause_ms: u64,
) -> String {
    let (worker, relay) = (guest("producer"), guest("scale-worker"));
    let mut m = format!(
        "[backend]\nlease = \"{lease}\"\n\n\
         [queues.jobs]\ncapacity = 1000\nacknowledged = {acknowledged}\n\n\
         [queues.out]\ncapacity = 1000000\n\n\
         [[worker]]\nname = \"r{host}\"\ncomponent = \"{relay}\"\ncount = 2\n\
         args = [\"relay\", \"jobs\", \"out\", \"100\", \"{pause_ms}\"]\n"
    );
    if producers > 0 {
        m += &format!(
            "\n[[worker]]\nname = \"p{host}\"\ncomponent = \"{worker}\"\ncount = {producers}\n\
             args = [\"jobs\", \"{each}\", \"0\", \"100\"]\n"
        );
    }
    m
}

/// The library's side of a run on the test's Redis: it declares the same
/// queues as the hosts, which attaches it to theirs.
async fn library_run(redis: &Redis, ns: &str, acknowledged: bool) -> Run {
    let run = Run::with_backend(Backend::Redis(
        redis.backend(ns, Duration::from_secs(1)).await,
    ));
    let jobs = QueueConfig {
        capacity: 1000,
        acknowledged,
        ..QueueConfig::default()
    };
    run.objects().declare_queue("jobs", jobs).unwrap();
    run.objects().declare_queue("out", BIG).unwrap();
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_share_one_queue_exactly() {
    let redis = Redis::start();
    let ns = namespace("share");
    let dir = tempfile::tempdir().unwrap();
    let run = library_run(&redis, &ns, false).await;
    let each = 25_000;
    let a = Host::start(
        dir.path(),
        "a",
        &relay_manifest("a", 2, each, false, "2s", 0),
        &redis,
        &ns,
    );
    let b = Host::start(
        dir.path(),
        "b",
        &relay_manifest("b", 2, each, false, "2s", 0),
        &redis,
        &ns,
    );
    let (want, want_sum) = expected(&["pa-1", "pa-2", "pb-1", "pb-2"], each);
    let started = Instant::now();
    let (seen, sum, duplicates) = drain(&run, want.len(), Duration::from_secs(120), |_| {}).await;
    let elapsed = started.elapsed();
    assert_eq!(duplicates, 0, "at-most-once delivers nothing twice");
    assert_eq!(seen, want, "every message exactly once");
    assert_eq!(sum, want_sum, "checksum");
    run.objects()
        .queue("jobs")
        .unwrap()
        .try_close()
        .await
        .unwrap();
    a.assert_ok(Duration::from_secs(30));
    b.assert_ok(Duration::from_secs(30));
    eprintln!(
        "100000 messages through Redis between two hosts in {:.2} s",
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_halfway_loses_nothing_in_acknowledged_mode() {
    let redis = Redis::start();
    let ns = namespace("kill");
    let dir = tempfile::tempdir().unwrap();
    let run = library_run(&redis, &ns, true).await;
    let each = 50_000;
    // Host a produces and relays; host b only relays, and is killed with
    // messages in flight. Its lease (the visibility timeout) is 1 s.
    let a = Host::start(
        dir.path(),
        "a",
        &relay_manifest("a", 2, each, true, "1s", 0),
        &redis,
        &ns,
    );
    let b = Host::start(
        dir.path(),
        "b",
        &relay_manifest("b", 0, each, true, "1s", 20),
        &redis,
        &ns,
    );
    let (want, want_sum) = expected(&["pa-1", "pa-2"], each);
    let mut b = Some(b);
    let (seen, sum, duplicates) = drain(&run, want.len(), Duration::from_secs(120), |n| {
        if n >= want.len() / 2
            && let Some(b) = b.take()
        {
            b.kill();
        }
    })
    .await;
    assert!(b.is_none(), "host b was killed halfway");
    // Host a's relays can finish the rest before b's lease runs out, so
    // what b held comes back only after that: keep reading past the lease.
    let late = drain_for(&run, &seen, Duration::from_secs(3)).await;
    let duplicates = duplicates + late;
    assert_eq!(seen, want, "every message at least once");
    assert_eq!(sum, want_sum, "checksum of the distinct messages");
    // What b's relays had relayed but not marked done when it died came
    // back (its relays pause there, so the kill lands in that window); only
    // that (at most a batch per relay) arrives twice.
    assert!(
        duplicates > 0,
        "b died holding messages that were redelivered"
    );
    assert!(duplicates <= 200, "{duplicates} duplicates");
    run.objects()
        .queue("jobs")
        .unwrap()
        .try_close()
        .await
        .unwrap();
    a.assert_ok(Duration::from_secs(30));
    eprintln!("host b killed halfway: nothing lost, {duplicates} delivered twice");
}

fn lock_manifest(role_args: &str, lease: &str) -> String {
    format!(
        "[backend]\nlease = \"{lease}\"\n\n[locks.l]\n[events.busy]\n\
         [queues.counter]\ncapacity = 1\n[queues.fences]\ncapacity = 100000\n\n\
         [[worker]]\nname = \"w\"\ncomponent = \"{}\"\ncount = 2\nargs = [{role_args}]\n",
        guest("scale-worker")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_contended_from_two_hosts_protects_a_counter_exactly() {
    let redis = Redis::start();
    let ns = namespace("lock");
    let dir = tempfile::tempdir().unwrap();
    let run = Run::with_backend(Backend::Redis(
        redis.backend(&ns, Duration::from_secs(2)).await,
    ));
    let small = QueueConfig {
        capacity: 1,
        ..QueueConfig::default()
    };
    let counter = run.objects().declare_queue("counter", small).unwrap();
    run.objects().declare_queue("fences", BIG).unwrap();
    counter
        .handle()
        .put(0u64.to_le_bytes().to_vec(), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let n = 150;
    let manifest = lock_manifest(&format!("\"count\", \"l\", \"{n}\""), "2s");
    let a = Host::start(dir.path(), "a", &manifest, &redis, &ns);
    let b = Host::start(dir.path(), "b", &manifest, &redis, &ns);
    let out_a = a.assert_ok(Duration::from_secs(120));
    let out_b = b.assert_ok(Duration::from_secs(120));
    assert!(out_a.contains("overlaps 0") && out_b.contains("overlaps 0"));
    let total = 4 * n;
    let value = counter
        .handle()
        .get(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(u64::from_le_bytes(value[..].try_into().unwrap()), total);
    let fences = run.objects().queue("fences").unwrap().handle();
    let tokens: Vec<u64> = fences
        .get_many(10_000, Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .iter()
        .map(|t| u64::from_le_bytes(t[..].try_into().unwrap()))
        .collect();
    let distinct: HashSet<u64> = tokens.iter().copied().collect();
    assert_eq!(tokens.len() as u64, total);
    assert_eq!(
        distinct.len() as u64,
        total,
        "a fencing token per acquisition"
    );
    let (min, max) = (tokens.iter().min().unwrap(), tokens.iter().max().unwrap());
    assert_eq!(max - min + 1, total, "fencing tokens count acquisitions");
    // A guard's drop sends its release in the background, and a worker's
    // end waits for it: once both hosts have exited, the lock is free and
    // nobody is said to have died holding it.
    let lock = run.objects().declare_lock("l", false).unwrap();
    let guard = lock
        .try_acquire(99)
        .await
        .unwrap()
        .expect("free once both hosts ended");
    assert!(!guard.previous_owner_died());
    guard.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_hosts_lock_lease_expires_and_the_next_holder_is_told() {
    let redis = Redis::start();
    let ns = namespace("lease");
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(1);
    let run = Run::with_backend(Backend::Redis(redis.backend(&ns, lease).await));
    let lock = run.objects().declare_lock("l", false).unwrap();
    let mut host = Host::start(
        dir.path(),
        "a",
        &lock_manifest("\"hold\", \"l\"", "1s"),
        &redis,
        &ns,
    );
    // One of the two holders gets it; the other waits (and is killed too).
    host.child.set_deadline(Duration::from_secs(60));
    let line = host.child.wait_for_line(|l| l.contains("holding"));
    let held_fence: u64 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert!(
        lock.try_acquire(99).await.unwrap().is_none(),
        "held by the other host"
    );
    host.kill();
    let killed = Instant::now();
    let guard = lock
        .acquire(99, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let waited = killed.elapsed();
    assert!(
        waited <= lease + Duration::from_secs(1),
        "waited {waited:?}"
    );
    assert!(guard.previous_owner_died(), "the next holder is told");
    assert!(guard.fencing_token() > held_fence, "fencing tokens grow");
    guard.release().await;
    let again = lock
        .acquire(99, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(!again.previous_owner_died(), "told once");
    again.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_keep_deployments_apart() {
    let redis = Redis::start();
    let lease = Duration::from_secs(2);
    let one = Run::with_backend(Backend::Redis(redis.backend("tenant-one", lease).await));
    let two = Run::with_backend(Backend::Redis(redis.backend("tenant-two", lease).await));
    let also_one = Run::with_backend(Backend::Redis(redis.backend("tenant-one", lease).await));
    let config = QueueConfig::default();
    let q1 = one.objects().declare_queue("jobs", config.clone()).unwrap();
    let q2 = two.objects().declare_queue("jobs", config.clone()).unwrap();
    let q1_again = also_one.objects().declare_queue("jobs", config).unwrap();
    q1.handle()
        .put(b"for one".to_vec(), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(q2.handle().try_get().await.unwrap(), None);
    assert_eq!(q2.len().await, 0);
    assert_eq!(
        q1_again
            .handle()
            .get(Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        &b"for one"[..]
    );
    let l1 = one.objects().declare_lock("l", false).unwrap();
    let l2 = two.objects().declare_lock("l", false).unwrap();
    let g1 = l1.acquire(1, Some(Duration::from_secs(10))).await.unwrap();
    let g2 = l2
        .try_acquire(2)
        .await
        .unwrap()
        .expect("another namespace's lock");
    assert!(l1.try_acquire(3).await.unwrap().is_none());
    g1.release().await;
    g2.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_at_start_and_restarted_mid_run() {
    // Unreachable at start: a clear error naming the address, at once.
    // Nothing listens on a socket path in a fresh directory.
    let dir = tempfile::tempdir().unwrap();
    let nobody = dir.path().join("nobody.sock");
    let url = format!("redis+unix://{}", nobody.display());
    let started = Instant::now();
    let err = RedisBackend::connect(RedisConfig::new(&url))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IpcError::Unavailable(m) if m.contains(&*nobody.to_string_lossy())),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let manifest = dir.path().join("m.toml");
    std::fs::write(&manifest, relay_manifest("a", 1, 10, false, "1s", 0)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .args(["up"])
        .arg(&manifest)
        .args(["--backend", &url]);
    let cli = output_within(&mut command, b"", Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot reach Redis at"), "{stderr}");

    // Restarted mid-run: blocked calls end within their timeouts, then
    // everything carries on with what the server had persisted.
    let mut redis = Redis::start_persistent();
    let ns = namespace("restart");
    let run = Run::with_backend(Backend::Redis(
        redis.backend(&ns, Duration::from_secs(5)).await,
    ));
    let acked = QueueConfig {
        acknowledged: true,
        ..QueueConfig::default()
    };
    let q = run.objects().declare_queue("q", acked).unwrap();
    let h = q.handle();
    for i in 0..10u8 {
        h.put(vec![i], Some(Duration::from_secs(10))).await.unwrap();
    }
    redis.kill();
    let t = Instant::now();
    assert!(h.get(Some(Duration::from_millis(500))).await.is_err());
    assert!(
        h.put(vec![99], Some(Duration::from_millis(500)))
            .await
            .is_err()
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    redis.restart();
    // The first calls after the restart may still meet the old connection.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while got.len() < 10 {
        assert!(Instant::now() < deadline, "got {got:?} after the restart");
        match h.get_many(10, Some(Duration::from_secs(1))).await {
            Ok(batch) => got.extend(batch.iter().map(|m| m[0])),
            Err(e) => eprintln!("after restart: {e}"),
        }
    }
    got.sort();
    got.dedup();
    assert_eq!(got, (0..10).collect::<Vec<u8>>(), "nothing lost");
    for _ in 0..10 {
        h.task_done().unwrap();
    }
    q.join(Some(Duration::from_secs(5))).await.unwrap();
}

/// Redis calls that do not wait for their object (a queue's `try-get`, a
/// lock's `try-acquire`, an event's `is-set`, a semaphore's `value`, a
/// barrier's `waiting`) still wait for Redis: during an outage they must
/// hold no runtime thread. On a one-thread runtime, a sibling using a local
/// queue keeps running while they all wait for a hung server. (Before, such
/// calls used `block_in_place`: on this runtime they failed at once, and on
/// a multi-thread one each held a thread of the blocking pool.)
#[tokio::test]
async fn calls_that_do_not_wait_hold_no_runtime_thread_during_a_redis_outage() {
    let redis = Redis::start();
    let run = library_run(&redis, &namespace("outage"), false).await;
    let objects = run.objects();
    let remote = objects.queue("jobs").unwrap().handle();
    let lock = objects.declare_lock("l", false).unwrap();
    let event = objects.declare_event("e").unwrap();
    let semaphore = objects.declare_semaphore("s", 1, 1).unwrap();
    let barrier = objects.declare_barrier("b", 2).unwrap();
    // Loads the scripts, so that each call below is one round trip.
    assert_eq!(remote.try_get().await, Ok(None));
    let guard = lock.try_acquire(1).await.unwrap().expect("a free lock");
    guard.release().await;
    assert!(!event.is_set().await);
    assert_eq!(semaphore.value().await, 1);
    assert_eq!(barrier.waiting().await, 0);
    let local = corral::ipc::local::Queue::new("local", QueueConfig::default());
    redis.signal("-STOP");
    let started = Instant::now();
    let sibling = async {
        let h = local.handle();
        let mut rounds = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            h.put(vec![1], None).await.unwrap();
            h.get(None).await.unwrap();
            h.task_done().unwrap();
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rounds
    };
    let calls = async {
        tokio::join!(
            remote.try_get(),
            lock.try_acquire(2),
            event.is_set(),
            semaphore.value(),
            barrier.waiting(),
        )
    };
    let waiting = tokio::time::timeout(Duration::from_secs(30), calls);
    let (calls, rounds) = tokio::join!(waiting, sibling);
    redis.signal("-CONT");
    let (got, acquired, set, value, waiters) = calls.expect("a call never ended");
    assert!(matches!(got, Err(IpcError::Unavailable(_))), "{got:?}");
    let acquired = acquired.map(|guard| guard.is_some());
    assert!(
        matches!(acquired, Err(IpcError::Unavailable(_))),
        "{acquired:?}"
    );
    assert!(!set, "unreachable reads as not set");
    assert_eq!((value, waiters), (0, 0), "unreachable reads as none");
    assert!(rounds > 100, "the sibling ran {rounds} rounds in 2 s");
    assert_eq!(remote.try_get().await, Ok(None), "back once Redis answers");
    assert!(!event.is_set().await, "back once Redis answers");
}

/// At-most-once: a consumer killed after the take script ran and before its
/// reply was read (its `get` future dropped) loses those messages, and they
/// are counted lost and taken off `unfinished`, so `join` returns. Before,
/// nobody counted them and `join` waited forever.
#[tokio::test(flavor = "multi_thread")]
async fn messages_of_a_take_whose_reply_was_never_read_are_counted_lost() {
    let redis = Redis::start();
    let run = library_run(&redis, &namespace("lostreply"), false).await;
    let queue = run.objects().queue("jobs").unwrap();
    let consumer = queue.handle();
    // Loads the take script, so that the take below is one round trip.
    assert_eq!(consumer.try_get().await, Ok(None));
    // On a loaded machine the whole round trip can fit in the first poll
    // (its thread preempted between sending and checking for the reply):
    // that take is read and done, and the next message is tried.
    let mut unread = false;
    for _ in 0..20 {
        queue.handle().put(b"doomed".to_vec(), None).await.unwrap();
        let mut get = std::pin::pin!(consumer.get(None));
        if futures::poll!(get.as_mut()).is_ready() {
            consumer.task_done().unwrap();
            continue;
        }
        // The connection's driver sends the script and reads its reply
        // meanwhile; the reply then goes nowhere.
        tokio::time::sleep(Duration::from_millis(200)).await;
        unread = true;
        break;
    }
    assert!(unread, "every take was read at its first poll");
    assert_eq!(queue.len().await, 0, "the script took it");
    drop(consumer);
    assert_eq!(queue.join(Some(Duration::from_secs(10))).await, Ok(()));
    assert_eq!(queue.lost().await, 1);
}
