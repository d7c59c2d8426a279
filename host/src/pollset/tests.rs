//! The pollset alone: sources the test switches, no sockets, no wasmtime.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::*;

/// A source made ready or not by the test, that counts its checks and
/// keeps the last waker it was given, as a tokio socket does.
#[derive(Default)]
struct Switch {
    ready: AtomicBool,
    waker: Mutex<Option<Waker>>,
    checks: AtomicUsize,
    membership: Membership,
}

impl Switch {
    fn new() -> Arc<Switch> {
        Arc::new(Switch::default())
    }

    fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        if ready && let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    /// What a read that drained the source does.
    fn drain(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.membership.touch();
    }
}

impl Source for Switch {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.ready.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *lock(&self.waker) = Some(cx.waker().clone());
        Poll::Pending
    }

    fn membership(&self) -> &Membership {
        &self.membership
    }
}

fn dyn_source(s: &Arc<Switch>) -> Arc<dyn Source> {
    s.clone()
}

/// `changed` within a deadline: a lost wake fails the test instead of
/// hanging it.
async fn changed_soon(set: &PollSet) -> bool {
    tokio::time::timeout(Duration::from_secs(5), set.changed())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_wake_is_reported_and_stays_ready_until_drained() {
    let set = PollSet::new();
    let a = Switch::new();
    set.watch(&dyn_source(&a), 7);
    assert!(set.ready(16).is_empty());

    let waker = tokio::spawn({
        let a = a.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            a.set(true);
        }
    });
    assert!(changed_soon(&set).await);
    assert_eq!(set.ready(16), [7]);
    // Level-triggered: not read yet, so still ready.
    assert_eq!(set.ready(16), [7]);
    a.drain();
    assert!(set.ready(16).is_empty());
    waker.await.unwrap();
}

#[tokio::test]
async fn a_wake_before_changed_is_not_lost() {
    let set = PollSet::new();
    let a = Switch::new();
    set.watch(&dyn_source(&a), 1);
    assert!(set.ready(16).is_empty());
    a.set(true);
    assert!(changed_soon(&set).await);
    assert_eq!(set.ready(16), [1]);
}

#[test]
fn a_wait_checks_only_what_changed() {
    let set = PollSet::new();
    let sources: Vec<Arc<Switch>> = (0..1000).map(|_| Switch::new()).collect();
    for (i, s) in sources.iter().enumerate() {
        set.watch(&dyn_source(s), i as u64);
    }
    assert!(set.ready(usize::MAX).is_empty());
    let before: usize = sources
        .iter()
        .map(|s| s.checks.load(Ordering::SeqCst))
        .sum();
    assert_eq!(before, 1000);

    sources[500].set(true);
    assert_eq!(set.ready(usize::MAX), [500]);
    let after: usize = sources
        .iter()
        .map(|s| s.checks.load(Ordering::SeqCst))
        .sum();
    assert_eq!(after - before, 1, "only the woken entry is checked");
}

#[test]
fn max_leaves_the_rest_for_the_next_call() {
    let set = PollSet::new();
    let sources: Vec<Arc<Switch>> = (0..5).map(|_| Switch::new()).collect();
    for (i, s) in sources.iter().enumerate() {
        s.set(true);
        set.watch(&dyn_source(s), i as u64);
    }
    // All five stay ready; each call takes the next two in turn.
    assert_eq!(set.ready(2), [0, 1]);
    assert_eq!(set.ready(2), [2, 3]);
    assert_eq!(set.ready(2), [4, 0]);
    let mut all = set.ready(usize::MAX);
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3, 4]);
}

#[test]
fn a_source_is_in_one_set_and_leaves_it_when_dropped() {
    let (one, two) = (PollSet::new(), PollSet::new());
    let a = Switch::new();
    a.set(true);
    one.watch(&dyn_source(&a), 1);
    one.watch(&dyn_source(&a), 2);
    assert_eq!(one.len(), 1);
    assert_eq!(one.ready(16), [2], "watching again changes the token");

    two.watch(&dyn_source(&a), 3);
    assert_eq!((one.len(), two.len()), (0, 1), "moved, not copied");
    assert!(one.ready(16).is_empty());
    assert_eq!(two.ready(16), [3]);

    one.unwatch(&*a);
    assert_eq!(two.len(), 1, "unwatch in a set that does not watch it");
    two.unwatch(&*a);
    assert_eq!(two.len(), 0);

    two.watch(&dyn_source(&a), 4);
    drop(a);
    assert_eq!(two.len(), 0);
    assert!(two.ready(16).is_empty());
}

#[test]
fn a_dropped_set_leaves_its_sources_usable() {
    let a = Switch::new();
    {
        let set = PollSet::new();
        set.watch(&dyn_source(&a), 1);
    }
    a.set(true);
    a.drain();
    let set = PollSet::new();
    a.set(true);
    set.watch(&dyn_source(&a), 9);
    assert_eq!(set.ready(16), [9]);
}

#[test]
fn rewatching_forever_holds_one_entry() {
    let (one, two) = (PollSet::new(), PollSet::new());
    let a = Switch::new();
    for i in 0..100_000u64 {
        let set = if i % 2 == 0 { &one } else { &two };
        set.watch(&dyn_source(&a), i);
        a.drain();
    }
    assert_eq!(one.len() + two.len(), 1);
    // Queues hold at most one key per entry, plus stale ones until the next
    // check drops them.
    assert!(one.ready(16).is_empty() && two.ready(16).is_empty());
    assert!(lock(&one.shared.state).queue.is_empty());
    assert!(lock(&two.shared.state).queue.is_empty());
}
