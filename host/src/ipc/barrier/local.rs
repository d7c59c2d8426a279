//! The in-process barrier: a counter and a round number under a mutex,
//! shared by the workers of one run on this host. The semantics are in
//! [`super`](super).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::ipc::IpcError;

/// A named barrier for a fixed number of parties.
pub struct Barrier {
    name: String,
    parties: u32,
    state: Mutex<BarrierState>,
    changed: Notify,
}

struct BarrierState {
    arrived: u32,
    generation: u64,
    broken: bool,
    /// How the round in progress ends, for its waiters: `true` when every
    /// party arrived, `false` when `reset` ended it. Each round has its own,
    /// so a waiter woken late still learns how its own round ended.
    outcome: Arc<OnceLock<bool>>,
}

impl Barrier {
    /// Creates a barrier for `parties` workers (at least 1).
    pub fn new(name: impl Into<String>, parties: u32) -> Arc<Barrier> {
        Arc::new(Barrier {
            name: name.into(),
            parties: parties.max(1),
            state: Mutex::new(BarrierState {
                arrived: 0,
                generation: 0,
                broken: false,
                outcome: Arc::default(),
            }),
            changed: Notify::new(),
        })
    }

    /// The barrier's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many workers must arrive.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// How many are waiting now. Never blocks.
    pub fn waiting(&self) -> u32 {
        self.lock().arrived
    }

    /// Whether the barrier is broken. Never blocks.
    pub fn is_broken(&self) -> bool {
        self.lock().broken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BarrierState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Breaks the barrier: every waiter gets `Broken`. Never blocks.
    pub fn abort(&self) {
        self.lock().broken = true;
        self.changed.notify_waiters();
    }

    /// Mends a broken barrier for a new round. Waiters of the current round
    /// get `Broken`, as in Python. Never blocks.
    pub fn reset(&self) {
        let mut state = self.lock();
        // Waiters go by their round's outcome, not by the round number,
        // which a reset moves on just as a completed round does.
        let _ = state.outcome.set(false);
        state.outcome = Arc::default();
        state.arrived = 0;
        state.generation += 1;
        state.broken = false;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Opens a handle for one worker.
    pub fn handle(self: &Arc<Self>) -> BarrierHandle {
        BarrierHandle {
            barrier: self.clone(),
            took_part: false,
        }
    }

    /// The round in progress (it increases as rounds complete or reset).
    pub fn round(&self) -> u64 {
        self.lock().generation
    }

    /// Resolves when the barrier is broken or round `generation` is over.
    /// For pollables.
    pub async fn ready_after(&self, generation: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if state.broken || state.generation != generation {
                    return;
                }
            }
            changed.await;
        }
    }
}

/// One worker's use of a barrier. Dropping it (the worker ended) breaks the
/// barrier if the worker took part in it or others are waiting.
pub struct BarrierHandle {
    barrier: Arc<Barrier>,
    took_part: bool,
}

/// A party's arrival in one round: when it leaves without passing (a
/// timeout, a broken barrier, or the worker killed mid-wait) it no longer
/// counts as waiting, and the barrier breaks if it was not yet broken.
struct Arrival<'a> {
    barrier: &'a Barrier,
    generation: u64,
    passed: bool,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        let mut state = self.barrier.lock();
        if state.generation != self.generation {
            return;
        }
        // Counted until now, this party would make `waiting` report a
        // waiter that is gone (found by tests/host_fuzz.rs).
        state.arrived = state.arrived.saturating_sub(1);
        if !state.broken {
            state.broken = true;
            drop(state);
            self.barrier.changed.notify_waiters();
        }
    }
}

impl BarrierHandle {
    /// The barrier.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Arrives and waits for the other parties. Returns this worker's arrival
    /// index (0 for the first to arrive, `parties - 1` for the last). A
    /// timeout breaks the barrier for everyone, as in Python.
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<u32, IpcError> {
        self.took_part = true;
        let barrier = &*self.barrier;
        let (index, generation, outcome) = {
            let mut state = barrier.lock();
            if state.broken {
                return Err(IpcError::Broken);
            }
            let index = state.arrived;
            state.arrived += 1;
            if state.arrived == barrier.parties {
                let _ = state.outcome.set(true);
                state.outcome = Arc::default();
                state.arrived = 0;
                state.generation += 1;
                drop(state);
                barrier.changed.notify_waiters();
                return Ok(index);
            }
            (index, state.generation, state.outcome.clone())
        };
        let mut arrival = Arrival {
            barrier,
            generation,
            passed: false,
        };
        let released = async {
            loop {
                let changed = barrier.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match outcome.get() {
                    Some(true) => return Ok(index),
                    Some(false) => return Err(IpcError::Broken),
                    None if barrier.lock().broken => return Err(IpcError::Broken),
                    None => {}
                }
                changed.await;
            }
        };
        let result = match timeout {
            None => released.await,
            Some(limit) => tokio::time::timeout(limit, released)
                .await
                .unwrap_or(Err(IpcError::Timeout)),
        };
        arrival.passed = result.is_ok();
        result
    }
}

impl Drop for BarrierHandle {
    fn drop(&mut self) {
        let others_waiting = self.barrier.waiting() > 0;
        if self.took_part || others_waiting {
            self.barrier.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A party that waits and stays in the barrier (its handle is never
    /// dropped), so its going cannot break the barrier.
    fn wait_without_leaving(b: &Arc<Barrier>) -> tokio::task::JoinHandle<Result<u32, IpcError>> {
        let mut waiter = b.handle();
        tokio::spawn(async move {
            let r = waiter.wait(None).await;
            std::mem::forget(waiter);
            r
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn all_pass_with_distinct_indexes() {
        let b = Barrier::new("b", 3);
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let mut h = b.handle();
            tasks.push(tokio::spawn(async move {
                let i = h.wait(None).await;
                std::mem::forget(h); // stays a party; do not break on drop
                i
            }));
        }
        let mut indexes: Vec<u32> = Vec::new();
        for t in tasks {
            indexes.push(t.await.unwrap().unwrap());
        }
        indexes.sort();
        assert_eq!(indexes, vec![0, 1, 2]);
        assert!(!b.is_broken());
    }

    #[tokio::test]
    async fn timeout_breaks_for_everyone_until_reset() {
        let b = Barrier::new("b", 3);
        let mut h1 = b.handle();
        let mut h2 = b.handle();
        let waiter = tokio::spawn(async move {
            let r = h2.wait(None).await;
            std::mem::forget(h2);
            r
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            h1.wait(Some(Duration::from_millis(10))).await,
            Err(IpcError::Timeout)
        );
        assert_eq!(waiter.await.unwrap(), Err(IpcError::Broken));
        assert_eq!(b.waiting(), 0, "nobody waits any more");
        assert_eq!(h1.wait(None).await, Err(IpcError::Broken));
        b.reset();
        assert!(!b.is_broken());
        std::mem::forget(h1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reset_tells_the_waiters_of_the_round_it_was_broken() {
        let b = Barrier::new("b", 2);
        let task = wait_without_leaving(&b);
        while b.waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        b.reset();
        assert_eq!(task.await.unwrap(), Err(IpcError::Broken));
        assert!(!b.is_broken());
    }

    #[tokio::test]
    async fn a_party_dying_mid_wait_breaks_it() {
        let b = Barrier::new("b", 2);
        let mut dying = b.handle();
        let task = tokio::spawn(async move { dying.wait(None).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        task.abort(); // the worker was killed while waiting
        let _ = task.await;
        assert_eq!(b.waiting(), 0, "the killed party no longer waits");
        let mut other = b.handle();
        assert_eq!(other.wait(None).await, Err(IpcError::Broken));
        std::mem::forget(other);
    }

    #[tokio::test]
    async fn a_party_ending_while_others_wait_breaks_it() {
        let b = Barrier::new("b", 3);
        let task = wait_without_leaving(&b);
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(b.handle()); // a party ends without arriving
        assert_eq!(task.await.unwrap(), Err(IpcError::Broken));
    }
}
