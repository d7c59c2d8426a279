//! The IPC half of the fuzzer: opens of declared and random names, and every
//! call of queue, pipe, lock, semaphore, event, barrier and condition on the
//! handles it holds, with random sizes, counts, batches and timeouts.

use corral_guest::wasi::clocks::monotonic_clock;
use corral_guest::wasi::io::poll::{Pollable, poll};
use corral_guest::{
    Barrier, Batch, Condition, Endpoint, Error, Event, Guard, Lock, Queue, Semaphore,
};

use crate::Tally;
use crate::rng::Rng;

/// The queues the test declares (`fz-ro` grants `get` only, `sib-q` is the
/// sibling's and not granted at all).
const QUEUES: &[&str] = &["fz-q", "fz-tiny", "fz-ro", "sib-q"];
const PIPES: &[&str] = &["fz-pipe"];
const LOCKS: &[&str] = &["fz-lock", "fz-rlock"];
const SEMAPHORES: &[&str] = &["fz-sem"];
const EVENTS: &[&str] = &["fz-event"];
const BARRIERS: &[&str] = &["fz-bar1", "fz-bar3"];
const CONDITIONS: &[&str] = &["fz-cond", "fz-rcond"];

/// Most handles of one kind kept open at once: past it, one is dropped.
const MAX_HELD: usize = 16;

/// The name of an error's variant, for the tally.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout => "timeout",
        Error::Closed => "closed",
        Error::Broken => "broken",
        Error::Denied(_) => "denied",
        Error::NotFound(_) => "not-found",
        Error::TooLarge(_) => "too-large",
        Error::Invalid(_) => "invalid",
    }
}

/// The IPC handles the fuzzer holds.
#[derive(Default)]
pub struct Objects {
    queues: Vec<Queue>,
    pipes: Vec<Endpoint>,
    locks: Vec<Lock>,
    guards: Vec<Guard>,
    semaphores: Vec<Semaphore>,
    events: Vec<Event>,
    barriers: Vec<Barrier>,
    conditions: Vec<Condition>,
}

/// Keeps `held` under [`MAX_HELD`] and adds `item`.
fn keep<T>(rng: &mut Rng, held: &mut Vec<T>, item: T) {
    if held.len() >= MAX_HELD {
        held.swap_remove(rng.below(held.len() as u64) as usize);
    }
    held.push(item);
}

/// Adds an opened handle to `held`, counting the open's result.
fn opened<T>(rng: &mut Rng, tally: &mut Tally, held: &mut Vec<T>, what: &str, r: Result<T, Error>) {
    tally.ipc(what, &r);
    if let Ok(item) = r {
        keep(rng, held, item);
    }
}

/// One of `held`, if any.
fn any<'a, T>(rng: &mut Rng, held: &'a [T]) -> Option<&'a T> {
    (!held.is_empty()).then(|| &held[rng.below(held.len() as u64) as usize])
}

/// Waits for `pollable` at most a millisecond; whether it was ready.
fn poll_briefly(pollable: &Pollable) -> bool {
    let timer = monotonic_clock::subscribe_duration(1_000_000);
    poll(&[pollable, &timer]).contains(&0)
}

/// A batch from the edges: lengths that add up or not, many empty
/// messages, lengths near `u32::MAX`.
fn batch(rng: &mut Rng) -> Batch {
    match rng.below(5) {
        0 => Batch {
            data: Vec::new(),
            lengths: vec![0; rng.below(200_000) as usize],
        },
        1 => Batch {
            data: vec![7; 10],
            lengths: vec![u32::MAX, 11],
        },
        2 => Batch {
            data: rng.bytes(),
            lengths: (0..rng.below(5)).map(|_| rng.count()).collect(),
        },
        _ => {
            let lengths: Vec<u32> = (0..rng.below(10)).map(|_| rng.below(100) as u32).collect();
            let total: u32 = lengths.iter().sum();
            Batch {
                data: vec![1; total as usize],
                lengths,
            }
        }
    }
}

impl Objects {
    /// One random IPC call.
    pub fn step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        match rng.below(8) {
            0 => self.queue_step(rng, tally),
            1 => self.pipe_step(rng, tally),
            2 | 3 => self.lock_step(rng, tally),
            4 => self.semaphore_step(rng, tally),
            5 => self.event_step(rng, tally),
            6 => self.barrier_step(rng, tally),
            _ => self.open_many(rng, tally),
        }
    }

    fn queue_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.queues.is_empty() || rng.one_in(6) {
            let name = rng.name(QUEUES);
            return opened(
                rng,
                tally,
                &mut self.queues,
                "queue.open",
                Queue::open(&name),
            );
        }
        let q = any(rng, &self.queues).expect("a queue is held");
        match rng.below(14) {
            0 => tally.ipc("queue.put", &q.put(&rng.bytes(), rng.short_timeout())),
            1 => tally.ipc("queue.try-put", &q.try_put(&rng.bytes())),
            2 => tally.ipc(
                "queue.put-many",
                &q.put_many(&batch(rng), rng.short_timeout()),
            ),
            3 => {
                let wait = if q.len() > 0 {
                    rng.any_timeout()
                } else {
                    rng.short_timeout()
                };
                tally.ipc("queue.get", &q.get(wait));
            }
            4 => tally.ipc("queue.try-get", &q.try_get()),
            5 => tally.ipc(
                "queue.get-many",
                &q.get_many(rng.count(), rng.short_timeout()),
            ),
            6 => tally.ipc("queue.task-done", &q.task_done()),
            7 => tally.ipc("queue.join", &q.join(rng.short_timeout())),
            8 if rng.one_in(8) => tally.ipc("queue.close", &q.close()),
            9 => {
                let ready = poll_briefly(&q.subscribe_get());
                tally.count(format!("queue.subscribe-get:{ready}"));
            }
            10 => {
                let ready = poll_briefly(&q.subscribe_put());
                tally.count(format!("queue.subscribe-put:{ready}"));
            }
            11 => {
                let (len, capacity) = (q.len(), q.capacity());
                tally.count(if len <= capacity {
                    "ok"
                } else {
                    "queue.len-over-capacity"
                });
            }
            _ => {
                let i = rng.below(self.queues.len() as u64) as usize;
                drop(self.queues.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    fn pipe_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.pipes.is_empty() || rng.one_in(5) {
            let name = rng.name(PIPES);
            return opened(
                rng,
                tally,
                &mut self.pipes,
                "pipe.open",
                Endpoint::open(&name),
            );
        }
        let end = any(rng, &self.pipes).expect("a pipe end is held");
        match rng.below(6) {
            0 => tally.ipc("pipe.send", &end.send(&rng.bytes(), rng.short_timeout())),
            1 => tally.ipc("pipe.recv", &end.recv(rng.short_timeout())),
            2 => tally.ipc("pipe.try-recv", &end.try_recv()),
            3 => {
                let ready = poll_briefly(&end.subscribe());
                tally.count(format!("pipe.subscribe:{ready}"));
            }
            4 => {
                end.close();
                tally.count("ok");
            }
            _ => {
                let i = rng.below(self.pipes.len() as u64) as usize;
                drop(self.pipes.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    fn lock_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.locks.is_empty() || rng.one_in(6) {
            let name = rng.name(LOCKS);
            return opened(rng, tally, &mut self.locks, "lock.open", Lock::open(&name));
        }
        if self.conditions.is_empty() || rng.one_in(8) {
            let name = rng.name(CONDITIONS);
            let r = Condition::open(&name);
            return opened(rng, tally, &mut self.conditions, "condition.open", r);
        }
        let lock = any(rng, &self.locks).expect("a lock is held");
        match rng.below(9) {
            // Nobody else uses these locks: taking one never waits (a plain
            // lock this worker holds is `invalid`, not a deadlock).
            0 | 1 => {
                let r = lock.acquire(rng.any_timeout());
                tally.ipc("lock.acquire", &r);
                if let Ok(guard) = r {
                    keep(rng, &mut self.guards, guard);
                }
            }
            2 => match lock.try_acquire() {
                Ok(Some(guard)) => {
                    tally.count("ok");
                    keep(rng, &mut self.guards, guard);
                }
                Ok(None) => tally.count("lock.try-acquire:held"),
                Err(e) => tally.count(format!("lock.try-acquire:{}", error_kind(&e))),
            },
            3 => {
                let ready = poll_briefly(&lock.subscribe());
                tally.count(format!("lock.subscribe:{ready}"));
            }
            4 if !self.guards.is_empty() => {
                let i = rng.below(self.guards.len() as u64) as usize;
                let guard = self.guards.swap_remove(i);
                let _ = (guard.previous_owner_died(), guard.fencing_token());
                drop(guard);
                tally.count("ok");
            }
            5 | 6 if !self.guards.is_empty() => {
                let condition = any(rng, &self.conditions).expect("a condition is held");
                let guard = any(rng, &self.guards).expect("a guard is held");
                tally.ipc(
                    "condition.wait",
                    &condition.wait(guard, rng.short_timeout()),
                );
            }
            7 => {
                let condition = any(rng, &self.conditions).expect("a condition is held");
                let r = if rng.one_in(2) {
                    condition.notify(rng.count())
                } else {
                    condition.notify_all()
                };
                tally.ipc("condition.notify", &r);
            }
            _ => {
                let i = rng.below(self.locks.len() as u64) as usize;
                drop(self.locks.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    fn semaphore_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.semaphores.is_empty() || rng.one_in(6) {
            let name = rng.name(SEMAPHORES);
            let r = Semaphore::open(&name);
            return opened(rng, tally, &mut self.semaphores, "semaphore.open", r);
        }
        let sem = any(rng, &self.semaphores).expect("a semaphore is held");
        match rng.below(5) {
            0 => {
                let wait = if sem.value() > 0 {
                    rng.any_timeout()
                } else {
                    rng.short_timeout()
                };
                tally.ipc("semaphore.acquire", &sem.acquire(wait));
            }
            1 => tally.ipc("semaphore.try-acquire", &sem.try_acquire()),
            2 => tally.ipc("semaphore.release", &sem.release()),
            3 => {
                let ready = poll_briefly(&sem.subscribe());
                tally.count(format!("semaphore.subscribe:{ready}"));
            }
            _ => {
                let i = rng.below(self.semaphores.len() as u64) as usize;
                drop(self.semaphores.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    fn event_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.events.is_empty() || rng.one_in(6) {
            let name = rng.name(EVENTS);
            return opened(
                rng,
                tally,
                &mut self.events,
                "event.open",
                Event::open(&name),
            );
        }
        let event = any(rng, &self.events).expect("an event is held");
        match rng.below(5) {
            0 => tally.ipc("event.set", &event.set()),
            1 => tally.ipc("event.clear", &event.clear()),
            2 => {
                let wait = if event.is_set() {
                    rng.any_timeout()
                } else {
                    rng.short_timeout()
                };
                tally.ipc("event.wait", &event.wait(wait));
            }
            3 => {
                let ready = poll_briefly(&event.subscribe());
                tally.count(format!("event.subscribe:{ready}"));
            }
            _ => {
                let i = rng.below(self.events.len() as u64) as usize;
                drop(self.events.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    fn barrier_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if self.barriers.is_empty() || rng.one_in(6) {
            let name = rng.name(BARRIERS);
            return opened(
                rng,
                tally,
                &mut self.barriers,
                "barrier.open",
                Barrier::open(&name),
            );
        }
        let barrier = any(rng, &self.barriers).expect("a barrier is held");
        match rng.below(6) {
            0 => {
                // A barrier of one party never waits.
                let wait = if barrier.parties() == 1 {
                    rng.any_timeout()
                } else {
                    rng.short_timeout()
                };
                tally.ipc("barrier.wait", &barrier.wait(wait));
            }
            1 => tally.ipc("barrier.abort", &barrier.abort()),
            2 => tally.ipc("barrier.reset", &barrier.reset()),
            3 => {
                let ready = poll_briefly(&barrier.subscribe());
                tally.count(format!("barrier.subscribe:{ready}"));
            }
            4 => {
                let (parties, waiting) = (barrier.parties(), barrier.waiting());
                tally.count(if waiting < parties {
                    "ok"
                } else {
                    "barrier.waiting-over-parties"
                });
            }
            _ => {
                let i = rng.below(self.barriers.len() as u64) as usize;
                drop(self.barriers.swap_remove(i));
                tally.count("ok");
            }
        }
    }

    /// Opens many handles on one object and drops them all: the host's
    /// tables must not grow without bound or trap.
    fn open_many(&mut self, rng: &mut Rng, tally: &mut Tally) {
        let most = if rng.one_in(20) { 20_000 } else { 200 };
        let n = rng.below(most);
        let mut held = Vec::new();
        let mut failed = 0;
        for _ in 0..n {
            match Queue::open("fz-q") {
                Ok(q) => held.push(q),
                Err(_) => failed += 1,
            }
        }
        tally.count(if failed == 0 {
            "ok"
        } else {
            "queue.open-many:failed"
        });
    }

    /// A call on a queue handle that was never issued (huge index) or is a
    /// handle of another kind.
    pub fn forged_call(&mut self, rng: &mut Rng) {
        let handle = match (rng.one_in(2), self.events.first()) {
            (true, Some(event)) => event.handle(),
            _ => 0x7fff_0000 + rng.below(1000) as u32,
        };
        println!("probe forged queue handle {handle}");
        // SAFETY: deliberately not a live queue handle: the host (or the
        // canonical ABI) must refuse it. It is never dropped.
        let forged = unsafe { Queue::from_handle(handle) };
        let _ = forged.len();
        std::mem::forget(forged);
    }

    /// A call on a queue handle after it was dropped.
    pub fn stale_call(&mut self, rng: &mut Rng) {
        let handle = match self.queues.pop() {
            Some(q) => {
                let handle = q.handle();
                drop(q);
                handle
            }
            None => 1 + rng.below(64) as u32,
        };
        println!("probe stale queue handle {handle}");
        // SAFETY: as in `forged_call`: a dropped handle, never dropped again.
        let stale = unsafe { Queue::from_handle(handle) };
        let _ = stale.try_get();
        std::mem::forget(stale);
    }
}
