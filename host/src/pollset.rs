//! Readiness of many sources at once, at a cost that grows with the sources
//! whose state changed rather than with those watched: what `epoll` is to
//! `select()`. The WIT `corral:worker/pollset` lands here through
//! `bindings::pollset`, which watches TCP input streams with it.
//!
//! Each entry has a waker of its own, handed to its source when the source
//! is checked and left registered there (as tokio's `poll_read_ready` keeps
//! the last waker it was given). Waking it queues the entry; a wait checks
//! only queued entries. A read through the source queues its entry too
//! ([`Membership::touch`]): the read may have drained the source, or may
//! have handed the source's registration to a waker that is not the
//! entry's, so only a check can tell.
//!
//! Plain async Rust: no wasmtime, so it is tested alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::Notify;

/// Something a [`PollSet`] can watch.
pub trait Source: Send + Sync {
    /// `Ready` if a read would not wait. When `Pending`, `cx`'s waker must
    /// be woken once that may have changed, even though the caller keeps
    /// no future alive: a registration that lives in the source.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// The source's membership, where a set records that it watches it.
    fn membership(&self) -> &Membership;
}

/// A set of watched sources; cloning it gives another handle on the same
/// set.
#[derive(Clone)]
pub struct PollSet {
    shared: Arc<Shared>,
}

/// What a set's entries' wakers reach.
struct Shared {
    state: Mutex<State>,
    /// Told when a queued entry was woken, so that a waiting set checks.
    notify: Notify,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    /// Entries to check at the next wait, each at most once (their
    /// [`Mark::queued`] says whether it is here).
    queue: Vec<u64>,
    next_key: u64,
}

struct Entry {
    source: Weak<dyn Source>,
    token: u64,
    mark: Arc<Mark>,
}

/// One entry's place in its set: its waker, and how a source reaches the
/// set that watches it.
struct Mark {
    set: Weak<Shared>,
    key: u64,
    queued: AtomicBool,
}

impl Mark {
    /// Queues the entry for a check, and tells a waiting set if `notify`.
    fn queue(&self, notify: bool) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(set) = self.set.upgrade() {
            set.lock().queue.push(self.key);
            if notify {
                set.notify.notify_one();
            }
        }
    }
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.queue(true);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue(true);
    }
}

/// Which set, if any, watches a source. Dropped with its source, which
/// leaves the set then.
#[derive(Default)]
pub struct Membership(Mutex<Option<Arc<Mark>>>);

impl Membership {
    /// Says that the source was read: its entry is checked at the next
    /// wait. Nothing if no set watches it. Never blocks for longer than
    /// two uncontended locks.
    pub fn touch(&self) {
        if let Some(mark) = &*lock(&self.0) {
            mark.queue(false);
        }
    }

    /// Leaves whatever set watches the source.
    fn leave(&self) {
        if let Some(mark) = lock(&self.0).take() {
            leave(&mark);
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Removes `mark`'s entry from its set, if the set is still there.
fn leave(mark: &Mark) {
    if let Some(set) = mark.set.upgrade() {
        set.lock().entries.remove(&mark.key);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Locks `m`; a panic while it was held leaves nothing half-done here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for PollSet {
    fn default() -> PollSet {
        PollSet::new()
    }
}

impl PollSet {
    /// An empty set.
    pub fn new() -> PollSet {
        PollSet {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
            }),
        }
    }

    /// Watches `source`, to be reported as `token`. A source is in one set
    /// at a time: this moves it from any other set, or gives it the new
    /// token if this set watches it already. It is checked at the next
    /// wait.
    pub fn watch(&self, source: &Arc<dyn Source>, token: u64) {
        let mut member = lock(&source.membership().0);
        if let Some(mark) = &*member {
            if self.owns(mark) {
                if let Some(entry) = self.shared.lock().entries.get_mut(&mark.key) {
                    entry.token = token;
                }
                mark.queue(false);
                return;
            }
            leave(mark);
        }
        let mut state = self.shared.lock();
        let key = state.next_key;
        state.next_key += 1;
        let mark = Arc::new(Mark {
            set: Arc::downgrade(&self.shared),
            key,
            queued: AtomicBool::new(true),
        });
        state.queue.push(key);
        state.entries.insert(
            key,
            Entry {
                source: Arc::downgrade(source),
                token,
                mark: mark.clone(),
            },
        );
        *member = Some(mark);
    }

    /// Stops watching `source`; nothing if this set does not watch it.
    pub fn unwatch(&self, source: &dyn Source) {
        let mut member = lock(&source.membership().0);
        if member.as_ref().is_some_and(|mark| self.owns(mark))
            && let Some(mark) = member.take()
        {
            leave(&mark);
        }
    }

    /// Whether `mark` is an entry of this set.
    fn owns(&self, mark: &Mark) -> bool {
        std::ptr::eq(mark.set.as_ptr(), Arc::as_ptr(&self.shared))
    }

    /// How many sources the set watches.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Whether the set watches nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tokens of at most `max` ready sources, without waiting. Checks
    /// only the entries that were woken or read since their last check, so
    /// it costs O(those), not O(watched). A ready entry stays queued: it is
    /// checked again next time (level-triggered).
    pub fn ready(&self, max: usize) -> Vec<u64> {
        let candidates: Vec<(Arc<Mark>, Weak<dyn Source>, u64)> = {
            let mut state = self.shared.lock();
            let queue = std::mem::take(&mut state.queue);
            let mut candidates = Vec::with_capacity(queue.len());
            for key in queue {
                if let Some(entry) = state.entries.get(&key) {
                    candidates.push((entry.mark.clone(), entry.source.clone(), entry.token));
                }
            }
            candidates
        };
        // Sources are polled with the set unlocked: a source's waker may be
        // called on this thread, and it locks the set.
        let mut ready = Vec::new();
        let (mut reported, mut unchecked) = (Vec::new(), Vec::new());
        for (mark, source, token) in candidates {
            mark.queued.store(false, Ordering::Release);
            if ready.len() == max {
                unchecked.push(mark);
                continue;
            }
            let Some(source) = source.upgrade() else {
                continue;
            };
            let waker = Waker::from(mark.clone());
            if source
                .poll_ready(&mut Context::from_waker(&waker))
                .is_ready()
            {
                ready.push(token);
                reported.push(mark);
            }
        }
        // Those left unchecked go first next time: a small `max` takes turns
        // round the ready entries instead of reporting the same ones.
        for mark in unchecked.iter().chain(&reported) {
            mark.queue(false);
        }
        ready
    }

    /// Resolves once an entry may have become ready since the last
    /// [`ready`](Self::ready) (at once if one was woken meanwhile); may
    /// also resolve when none did, so callers loop. Cancel safe: a wake is
    /// never lost, it is kept for the next call.
    pub async fn changed(&self) {
        if !self.shared.lock().queue.is_empty() {
            return;
        }
        self.shared.notify.notified().await;
    }
}

#[cfg(test)]
mod tests;
