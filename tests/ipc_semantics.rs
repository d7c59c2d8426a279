//! One semantics suite per IPC object, written once and run against both
//! backends (issue 16): each test body takes a [`Place`] and the
//! `on_both_backends!` macro instantiates it twice, `local` and `redis`, so
//! the rules of the two backends cannot drift apart.
//!
//! It includes cancellation at every await point. A "kill" is what the
//! runtime does when it terminates a worker: the future of the call it is
//! blocked in is dropped, then its handles (queue handles, lock guards,
//! barrier handles) are dropped unreleased. Here a worker is a spawned task
//! that owns its handles; aborting it does both.
//!
//! The Redis side needs `redis-server` (see `common::redis`); each test
//! starts its own. Every wait has a deadline.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::Redis;
use corral::ipc::{
    Backend, Barrier, Event, IpcError, Lock, Queue, QueueConfig, QueueHandle, Semaphore,
};
use tokio::task::JoinHandle;

/// Where a test's objects live: this process, or a `redis-server` of the
/// test's own.
struct Place {
    backend: Backend,
    _redis: Option<Redis>,
}

impl Place {
    fn local() -> Place {
        Place {
            backend: Backend::Local,
            _redis: None,
        }
    }

    async fn redis() -> Place {
        let redis = Redis::start();
        let backend = redis.backend("semantics", Duration::from_secs(5)).await;
        Place {
            backend: Backend::Redis(backend),
            _redis: Some(redis),
        }
    }

    fn queue(&self, name: &str, capacity: usize, acknowledged: bool) -> Arc<Queue> {
        let config = QueueConfig {
            capacity,
            max_message: 16,
            acknowledged,
            ..QueueConfig::default()
        };
        Queue::new(&self.backend, name, config).unwrap()
    }

    fn lock(&self, name: &str, reentrant: bool) -> Arc<Lock> {
        Lock::new(&self.backend, name, reentrant).unwrap()
    }

    fn semaphore(&self, name: &str, initial: u32, max: u32) -> Arc<Semaphore> {
        Semaphore::new(&self.backend, name, initial, max).unwrap()
    }

    fn event(&self, name: &str) -> Arc<Event> {
        Event::new(&self.backend, name).unwrap()
    }

    fn barrier(&self, name: &str, parties: u32) -> Arc<Barrier> {
        Barrier::new(&self.backend, name, parties).unwrap()
    }
}

/// Instantiates each test body for both backends, each run bounded by
/// [`TEST_LIMIT`].
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::bounded(super::$name(super::Place::local())).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::bounded(async { super::$name(super::Place::redis().await).await }).await
            }
        }
    )*};
}

/// The longest a whole test may take, whatever hangs.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// A timeout the test expects to elapse.
const SHORT: Option<Duration> = Some(Duration::from_millis(150));
/// A wait the test expects to end well before: generous for a loaded machine.
const LONG: Option<Duration> = Some(Duration::from_secs(10));
/// How long a call is given to reach the point where it blocks (a Redis
/// call: its script's round trip, then the wait for a notification).
const SETTLE: Duration = Duration::from_millis(400);

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test hung")
}

/// Waits until `task` has had time to block, and checks that it did.
async fn blocked<T>(task: &JoinHandle<T>, what: &str) {
    tokio::time::sleep(SETTLE).await;
    assert!(!task.is_finished(), "{what} should be blocked");
}

/// Kills a worker: aborts its task, dropping the call it is blocked in and
/// every handle it owns. `Some` if the call had ended first.
async fn kill<T>(task: JoinHandle<T>) -> Option<T> {
    task.abort();
    match tokio::time::timeout(LONG.unwrap(), task).await {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) if e.is_cancelled() => None,
        Ok(Err(e)) => panic!("the worker panicked: {e}"),
        Err(_) => panic!("an aborted worker did not end"),
    }
}

/// Polls `check` until it holds (a Redis handle settles in the background
/// when dropped), failing past [`LONG`].
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + LONG.unwrap();
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery modes a queue test runs in: at-most-once, then
/// acknowledged (at-least-once).
const MODES: [bool; 2] = [false, true];

fn name(base: &str, acknowledged: bool) -> String {
    format!("{base}-{}", if acknowledged { "ack" } else { "amo" })
}

async fn get_text(h: &QueueHandle) -> Vec<u8> {
    h.get(LONG).await.expect("a message").to_vec()
}

on_both_backends!(
    queue_depth_reaches_snapshots,
    queue_is_fifo_and_bounded,
    queue_close_drains_then_refuses_and_wakes_getters,
    queue_join_waits_for_every_task_done,
    queue_a_dead_consumer_loses_or_returns_what_it_took,
    queue_killed_while_blocked_in_put_leaves_nothing_behind,
    queue_killed_while_blocked_in_get_takes_nothing,
    queue_killed_while_blocked_in_join_changes_nothing,
    lock_excludes_times_out_and_hands_over,
    lock_relock_is_invalid_unless_reentrant,
    lock_a_dead_holder_frees_it_and_the_next_is_told_once,
    lock_killed_while_blocked_in_acquire_takes_nothing,
    semaphore_counts_bounds_and_waits,
    semaphore_killed_while_blocked_in_acquire_takes_nothing,
    event_sets_clears_and_wakes,
    event_killed_while_blocked_in_wait_changes_nothing,
    barrier_passes_all_parties_with_distinct_indexes,
    barrier_timeout_breaks_it_for_everyone_until_reset,
    barrier_killed_while_blocked_in_wait_breaks_it,
    barrier_reset_breaks_the_current_waiters,
);

/// `corral ps` and `--metrics` read a queue's depth without waiting: at
/// once for a local queue, as read in the background (within about a
/// second of a change) for a Redis one.
async fn queue_depth_reaches_snapshots(place: Place) {
    let run = corral::Run::with_backend(place.backend.clone());
    let config = QueueConfig {
        capacity: 10,
        ..QueueConfig::default()
    };
    let q = run.objects().declare_queue("watched", config).unwrap();
    let depth = || {
        let stats = run.objects().stats();
        let seen = stats.iter().find(|o| o.name == "watched").unwrap();
        assert_eq!(seen.capacity, Some(10));
        seen.depth
    };
    let h = q.handle();
    h.put_many(vec![vec![1]; 3], LONG).await.unwrap();
    eventually("a depth of 3", || std::future::ready(depth() == Some(3))).await;
    h.get_many(2, LONG).await.unwrap();
    eventually("a depth of 1", || std::future::ready(depth() == Some(1))).await;
}

async fn queue_is_fifo_and_bounded(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("fifo", acknowledged), 3, acknowledged);
        let h = q.handle();
        for i in 0..3u8 {
            h.put(vec![i], LONG).await.unwrap();
        }
        assert_eq!(q.len().await, 3);
        assert_eq!(h.try_put(vec![9]).await, Ok(false), "full");
        let started = Instant::now();
        assert_eq!(h.put(vec![9], SHORT).await, Err(IpcError::Timeout));
        assert!(started.elapsed() >= SHORT.unwrap(), "timed out early");
        assert_eq!(h.put(vec![0; 17], LONG).await, Err(IpcError::TooLarge(16)));
        assert!(matches!(
            h.put_many(vec![vec![1]; 4], LONG).await,
            Err(IpcError::Invalid(_))
        ));
        assert_eq!(q.len().await, 3, "nothing of a refused put went in");
        for i in 0..3u8 {
            assert_eq!(get_text(&h).await, vec![i], "in order");
        }
        h.put_many(vec![vec![3], vec![4], vec![5]], LONG)
            .await
            .unwrap();
        let two = h.get_many(2, LONG).await.unwrap();
        assert_eq!(two, vec![vec![3u8], vec![4]]);
        assert_eq!(h.get_many(5, LONG).await.unwrap(), vec![vec![5u8]]);
        assert_eq!(h.get(SHORT).await, Err(IpcError::Timeout));
        assert_eq!(h.try_get().await, Ok(None));
        assert!(matches!(
            h.get_many(0, SHORT).await,
            Err(IpcError::Invalid(_))
        ));
        for _ in 0..6 {
            h.task_done().unwrap();
        }
        assert_eq!(q.join(LONG).await, Ok(()));
        assert_eq!(q.lost().await, 0);
    }
}

async fn queue_close_drains_then_refuses_and_wakes_getters(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("close", acknowledged), 4, acknowledged);
        let waiter = tokio::spawn({
            let h = q.handle();
            async move { h.get(LONG).await }
        });
        blocked(&waiter, "a get on an empty queue").await;
        q.close().await;
        let woken = tokio::time::timeout(LONG.unwrap(), waiter).await;
        assert_eq!(woken.unwrap().unwrap(), Err(IpcError::Closed));

        let q = place.queue(&name("drain", acknowledged), 4, acknowledged);
        let h2 = q.handle();
        h2.put(vec![1], LONG).await.unwrap();
        q.close().await;
        assert_eq!(h2.put(vec![2], LONG).await, Err(IpcError::Closed));
        assert_eq!(get_text(&h2).await, vec![1], "what was put is drained");
        assert_eq!(h2.get(LONG).await, Err(IpcError::Closed));
        assert_eq!(h2.try_get().await, Err(IpcError::Closed));
    }
}

async fn queue_join_waits_for_every_task_done(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("join", acknowledged), 8, acknowledged);
        let h = q.handle();
        assert!(matches!(h.task_done(), Err(IpcError::Invalid(_))));
        h.put_many(vec![vec![1], vec![2]], LONG).await.unwrap();
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        get_text(&h).await;
        h.task_done().unwrap();
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        get_text(&h).await;
        let joiner = tokio::spawn({
            let q = q.clone();
            async move { q.join(LONG).await }
        });
        blocked(&joiner, "a join with one message not done").await;
        h.task_done().unwrap();
        let joined = tokio::time::timeout(LONG.unwrap(), joiner).await;
        assert_eq!(joined.unwrap().unwrap(), Ok(()));
        assert!(matches!(h.task_done(), Err(IpcError::Invalid(_))));
    }
}

async fn queue_a_dead_consumer_loses_or_returns_what_it_took(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("dead", acknowledged), 8, acknowledged);
        let producer = q.handle();
        producer
            .put_many(vec![vec![1], vec![2], vec![3]], LONG)
            .await
            .unwrap();
        let consumer = q.handle();
        assert_eq!(get_text(&consumer).await, vec![1]);
        assert_eq!(get_text(&consumer).await, vec![2]);
        consumer.task_done().unwrap(); // 1 is done, 2 is not
        drop(consumer); // the worker died holding 2
        let survivor = q.handle();
        if acknowledged {
            // A Redis handle settles in the background once dropped.
            eventually("the dead consumer's message is back", || async {
                q.len().await == 2
            })
            .await;
            assert_eq!(get_text(&survivor).await, vec![2], "2 comes back first");
            assert_eq!(get_text(&survivor).await, vec![3]);
            survivor.task_done().unwrap();
            survivor.task_done().unwrap();
            assert_eq!(q.lost().await, 0);
        } else {
            assert_eq!(get_text(&survivor).await, vec![3], "2 is gone");
            survivor.task_done().unwrap();
            eventually("the dead consumer's message is counted lost", || async {
                q.lost().await == 1
            })
            .await;
        }
        assert_eq!(q.join(LONG).await, Ok(()));
        assert_eq!(q.len().await, 0);
    }
}

async fn queue_killed_while_blocked_in_put_leaves_nothing_behind(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("killput", acknowledged), 1, acknowledged);
        let consumer = q.handle();
        consumer.put(vec![0], LONG).await.unwrap();
        let put = tokio::spawn({
            let h = q.handle();
            async move { h.put(vec![1], None).await }
        });
        let put_many = tokio::spawn({
            let h = q.handle();
            async move { h.put_many(vec![vec![2]], None).await }
        });
        blocked(&put, "a put on a full queue").await;
        blocked(&put_many, "a put-many on a full queue").await;
        assert_eq!(kill(put).await, None);
        assert_eq!(kill(put_many).await, None);
        assert_eq!(get_text(&consumer).await, vec![0]);
        consumer.task_done().unwrap();
        assert_eq!(
            consumer.get(SHORT).await,
            Err(IpcError::Timeout),
            "never put"
        );
        assert_eq!(q.join(LONG).await, Ok(()), "and not counted unfinished");
        assert_eq!(q.lost().await, 0);
    }
}

async fn queue_killed_while_blocked_in_get_takes_nothing(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("killget", acknowledged), 4, acknowledged);
        let get = tokio::spawn({
            let h = q.handle();
            async move { h.get(None).await }
        });
        let get_many = tokio::spawn({
            let h = q.handle();
            async move { h.get_many(4, None).await }
        });
        blocked(&get, "a get on an empty queue").await;
        blocked(&get_many, "a get-many on an empty queue").await;
        assert_eq!(kill(get).await, None);
        assert_eq!(kill(get_many).await, None);
        let h = q.handle();
        h.put(vec![7], LONG).await.unwrap();
        assert_eq!(
            get_text(&h).await,
            vec![7],
            "the killed getters took nothing"
        );
        h.task_done().unwrap();
        assert_eq!(q.join(LONG).await, Ok(()));
        assert_eq!(q.lost().await, 0);
    }
}

async fn queue_killed_while_blocked_in_join_changes_nothing(place: Place) {
    for acknowledged in MODES {
        let q = place.queue(&name("killjoin", acknowledged), 4, acknowledged);
        let h = q.handle();
        h.put(vec![1], LONG).await.unwrap();
        let join = tokio::spawn({
            let q = q.clone();
            async move { q.join(None).await }
        });
        blocked(&join, "a join with a message not done").await;
        assert_eq!(kill(join).await, None);
        assert_eq!(q.len().await, 1);
        assert_eq!(q.join(SHORT).await, Err(IpcError::Timeout));
        get_text(&h).await;
        h.task_done().unwrap();
        assert_eq!(q.join(LONG).await, Ok(()));
    }
}

async fn lock_excludes_times_out_and_hands_over(place: Place) {
    let lock = place.lock("excl", false);
    let first = lock.acquire(1, LONG).await.unwrap();
    assert!(!first.previous_owner_died());
    assert!(lock.try_acquire(2).await.unwrap().is_none());
    assert_eq!(lock.acquire(2, SHORT).await.err(), Some(IpcError::Timeout));
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move {
            let g = lock.acquire(2, LONG).await?;
            let seen = (g.owner(), g.previous_owner_died(), g.fencing_token());
            g.release().await;
            Ok::<_, IpcError>(seen)
        }
    });
    blocked(&waiter, "an acquire of a held lock").await;
    let token = first.fencing_token();
    first.release().await;
    let handed = tokio::time::timeout(LONG.unwrap(), waiter).await;
    let (owner, died, next_token) = handed.unwrap().unwrap().unwrap();
    assert_eq!((owner, died), (2, false));
    assert!(
        next_token > token,
        "fencing tokens grow: {token} then {next_token}"
    );
    let again = lock.acquire(3, LONG).await.unwrap();
    assert!(again.fencing_token() > next_token);
    again.release().await;
}

async fn lock_relock_is_invalid_unless_reentrant(place: Place) {
    let plain = place.lock("plain", false);
    let g = plain.acquire(1, LONG).await.unwrap();
    assert!(matches!(
        plain.acquire(1, SHORT).await,
        Err(IpcError::Invalid(_))
    ));
    g.release().await;

    let reentrant = place.lock("reentrant", true);
    let outer = reentrant.acquire(1, LONG).await.unwrap();
    let inner = reentrant.acquire(1, LONG).await.unwrap();
    assert!(reentrant.try_acquire(2).await.unwrap().is_none());
    inner.release().await;
    assert!(
        reentrant.try_acquire(2).await.unwrap().is_none(),
        "one guard left"
    );
    outer.release().await;
    let other = reentrant.acquire(2, LONG).await.unwrap();
    assert!(!other.previous_owner_died());
    other.release().await;
}

async fn lock_a_dead_holder_frees_it_and_the_next_is_told_once(place: Place) {
    for reentrant in [false, true] {
        let lock = place.lock(if reentrant { "dead-r" } else { "dead" }, reentrant);
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let lock = lock.clone();
            async move {
                let outer = lock.acquire(1, LONG).await.unwrap();
                let inner = match reentrant {
                    true => Some(lock.acquire(1, LONG).await.unwrap()),
                    false => None,
                };
                held_tx.send(outer.fencing_token()).unwrap();
                let _guards = (outer, inner);
                std::future::pending::<()>().await;
            }
        });
        let token = tokio::time::timeout(LONG.unwrap(), held_rx).await;
        let token = token.unwrap().unwrap();
        assert_eq!(kill(holder).await, None);
        let next = lock.acquire(2, LONG).await.unwrap();
        assert!(next.previous_owner_died(), "the next holder is told");
        assert!(next.fencing_token() > token);
        next.release().await;
        let after = lock.acquire(3, LONG).await.unwrap();
        assert!(!after.previous_owner_died(), "told once");
        after.release().await;
    }
}

async fn lock_killed_while_blocked_in_acquire_takes_nothing(place: Place) {
    let lock = place.lock("killacq", false);
    let holder = lock.acquire(1, LONG).await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move {
            let guard = lock.acquire(2, None).await?;
            guard.release().await;
            Ok::<(), IpcError>(())
        }
    });
    blocked(&waiter, "an acquire of a held lock").await;
    assert_eq!(kill(waiter).await, None);
    holder.release().await;
    let next = lock
        .acquire(3, LONG)
        .await
        .expect("free: the killed waiter took nothing");
    assert!(!next.previous_owner_died());
    next.release().await;
    assert_eq!(lock.owner(), None);
}

async fn semaphore_counts_bounds_and_waits(place: Place) {
    let s = place.semaphore("count", 2, 2);
    s.acquire(LONG).await.unwrap();
    assert!(s.try_acquire().await.unwrap());
    assert!(!s.try_acquire().await.unwrap());
    assert_eq!(s.value().await, 0);
    assert_eq!(s.acquire(SHORT).await, Err(IpcError::Timeout));
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.acquire(LONG).await }
    });
    blocked(&waiter, "an acquire with no permit").await;
    s.release().await.unwrap();
    let woken = tokio::time::timeout(LONG.unwrap(), waiter).await;
    assert_eq!(woken.unwrap().unwrap(), Ok(()));
    s.release().await.unwrap();
    s.release().await.unwrap();
    assert_eq!(s.value().await, 2);
    assert!(
        matches!(s.release().await, Err(IpcError::Invalid(_))),
        "bounded"
    );
    assert_eq!(s.value().await, 2);
}

async fn semaphore_killed_while_blocked_in_acquire_takes_nothing(place: Place) {
    let s = place.semaphore("killsem", 1, 1);
    assert!(s.try_acquire().await.unwrap());
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.acquire(None).await }
    });
    blocked(&waiter, "an acquire with no permit").await;
    assert_eq!(kill(waiter).await, None);
    s.release().await.unwrap();
    assert_eq!(s.value().await, 1, "the killed waiter took no permit");
    assert!(s.try_acquire().await.unwrap());
}

async fn event_sets_clears_and_wakes(place: Place) {
    let e = place.event("flag");
    assert!(!e.is_set().await);
    assert_eq!(e.wait(SHORT).await, Ok(false), "a timeout returns the flag");
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.wait(LONG).await })
        })
        .collect();
    for w in &waiters {
        blocked(w, "a wait on a clear event").await;
    }
    e.set().await.unwrap();
    for w in waiters {
        let woken = tokio::time::timeout(LONG.unwrap(), w).await;
        assert_eq!(woken.unwrap().unwrap(), Ok(true), "every waiter wakes");
    }
    assert!(e.is_set().await);
    assert_eq!(e.wait(SHORT).await, Ok(true), "a set flag stays set");
    e.clear().await.unwrap();
    assert!(!e.is_set().await);
    assert_eq!(e.wait(SHORT).await, Ok(false));
}

async fn event_killed_while_blocked_in_wait_changes_nothing(place: Place) {
    let e = place.event("killwait");
    let doomed = tokio::spawn({
        let e = e.clone();
        async move { e.wait(None).await }
    });
    let survivor = tokio::spawn({
        let e = e.clone();
        async move { e.wait(LONG).await }
    });
    blocked(&doomed, "a wait on a clear event").await;
    assert_eq!(kill(doomed).await, None);
    assert!(!e.is_set().await);
    e.set().await.unwrap();
    let woken = tokio::time::timeout(LONG.unwrap(), survivor).await;
    assert_eq!(woken.unwrap().unwrap(), Ok(true));
}

async fn barrier_passes_all_parties_with_distinct_indexes(place: Place) {
    let b = place.barrier("pass", 3);
    let mut handles: Vec<_> = (0..3).map(|_| b.handle()).collect();
    for round in 0..2u64 {
        assert_eq!(b.round().await, round);
        let waits = handles.iter_mut().map(|h| h.wait(LONG));
        let mut indexes: Vec<u32> = futures::future::join_all(waits)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        indexes.sort();
        assert_eq!(indexes, vec![0, 1, 2]);
        assert!(!b.is_broken().await);
        assert_eq!(b.waiting().await, 0);
    }
}

async fn barrier_timeout_breaks_it_for_everyone_until_reset(place: Place) {
    let b = place.barrier("timeout", 3);
    let mut first = b.handle();
    let mut second = b.handle();
    let waiter = tokio::spawn(async move {
        let r = second.wait(LONG).await;
        (r, second)
    });
    blocked(&waiter, "a wait for two more parties").await;
    assert_eq!(first.wait(SHORT).await, Err(IpcError::Timeout));
    let broken = tokio::time::timeout(LONG.unwrap(), waiter).await;
    let (r, _second) = broken.unwrap().unwrap();
    assert_eq!(r, Err(IpcError::Broken));
    assert!(b.is_broken().await);
    assert_eq!(first.wait(LONG).await, Err(IpcError::Broken), "until reset");
    b.reset().await.unwrap();
    assert!(!b.is_broken().await);
    b.abort().await.unwrap();
    assert!(b.is_broken().await);
    assert_eq!(first.wait(LONG).await, Err(IpcError::Broken));
}

async fn barrier_killed_while_blocked_in_wait_breaks_it(place: Place) {
    let b = place.barrier("killwait", 3);
    let doomed = tokio::spawn({
        let mut h = b.handle();
        async move { h.wait(None).await }
    });
    let mut other = b.handle();
    let survivor = tokio::spawn(async move {
        let r = other.wait(LONG).await;
        (r, other)
    });
    blocked(&doomed, "a wait for two more parties").await;
    blocked(&survivor, "a wait for one more party").await;
    assert_eq!(kill(doomed).await, None);
    let broken = tokio::time::timeout(LONG.unwrap(), survivor).await;
    assert_eq!(broken.unwrap().unwrap().0, Err(IpcError::Broken));
    assert!(b.is_broken().await);
}

/// As Python's `Barrier.reset`: the parties waiting in the round that was
/// reset get `broken`, they do not pass as if the round had completed.
async fn barrier_reset_breaks_the_current_waiters(place: Place) {
    let b = place.barrier("reset", 3);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let mut h = b.handle();
            tokio::spawn(async move {
                let r = h.wait(LONG).await;
                (r, h)
            })
        })
        .collect();
    for w in &waiters {
        blocked(w, "a wait for one more party").await;
    }
    b.reset().await.unwrap();
    // The parties stay alive: one that ends after taking part breaks it.
    let mut parties = Vec::new();
    for w in waiters {
        let (r, h) = tokio::time::timeout(LONG.unwrap(), w)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r, Err(IpcError::Broken), "a reset round does not pass");
        parties.push(h);
    }
    assert!(!b.is_broken().await, "mended for the next round");
    assert_eq!(b.waiting().await, 0);
}
