//! What each named object of a run holds and has done, read for snapshots
//! (`corral ps`, `--metrics`) without waiting: each local object answers
//! from its counters or one short hold of its own lock. Redis objects are
//! listed by name, with a queue's depth as last read in the background
//! (their state is a round trip away, and a snapshot must not wait on the
//! network).

use serde::{Deserialize, Serialize};

use super::fifo::FifoStats;
use super::{Barrier, Condition, Event, Lock, Pipe, Queue, Registry, Semaphore, WorkerId};

/// One named object's state. Fields that do not apply to its kind (or to
/// a Redis object) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectStats {
    /// `queue`, `pipe`, `lock`, `semaphore`, `event`, `barrier` or `condition`.
    pub kind: String,
    /// The name the manifest declared.
    pub name: String,
    /// `local` or `redis`.
    pub backend: String,
    /// Messages waiting (a pipe: both directions together).
    pub depth: Option<u64>,
    /// How many messages fit before a put waits (per direction for pipes).
    pub capacity: Option<u64>,
    /// Bytes of the waiting messages.
    pub bytes: Option<u64>,
    /// Messages ever put (sent, for a pipe).
    pub puts: Option<u64>,
    /// Messages ever taken (received, for a pipe).
    pub gets: Option<u64>,
    /// The worker holding a lock.
    pub holder: Option<WorkerId>,
    /// A semaphore's free permits, an event's flag (0 or 1), the parties
    /// waiting at a barrier.
    pub value: Option<u64>,
    /// A semaphore's bound, a barrier's parties.
    pub max: Option<u64>,
}

impl ObjectStats {
    fn new(kind: &str, name: &str, local: bool) -> ObjectStats {
        ObjectStats {
            kind: kind.into(),
            name: name.into(),
            backend: if local { "local" } else { "redis" }.into(),
            ..ObjectStats::default()
        }
    }

    fn with_fifo(mut self, fifo: FifoStats, capacity: usize) -> ObjectStats {
        self.depth = Some(fifo.len as u64);
        self.bytes = Some(fifo.bytes as u64);
        self.puts = Some(fifo.pushed);
        self.gets = Some(fifo.popped);
        self.capacity = Some(capacity as u64);
        self
    }
}

impl Registry {
    /// Every object's state, by kind then name. Takes the registry's read
    /// lock once per kind, and each object's own lock briefly.
    pub fn stats(&self) -> Vec<ObjectStats> {
        let mut all = Vec::new();
        for name in self.names::<Queue>() {
            let Ok(queue) = self.queue(&name) else {
                continue;
            };
            all.push(match &*queue {
                Queue::Local(q) => {
                    ObjectStats::new("queue", &name, true).with_fifo(q.stats(), q.capacity())
                }
                Queue::Redis(q) => ObjectStats {
                    depth: q.depth_hint(),
                    capacity: Some(q.capacity() as u64),
                    ..ObjectStats::new("queue", &name, false)
                },
            });
        }
        for name in self.names::<Pipe>() {
            let Ok(pipe) = self.pipe(&name) else { continue };
            all.push(
                ObjectStats::new("pipe", &name, true).with_fifo(pipe.stats(), pipe.capacity()),
            );
        }
        for name in self.names::<Lock>() {
            let Ok(lock) = self.lock(&name) else { continue };
            let mut stats = ObjectStats::new("lock", &name, matches!(&*lock, Lock::Local(..)));
            if let Lock::Local(local, _) = &*lock {
                stats.holder = local.owner();
            }
            all.push(stats);
        }
        for name in self.names::<Semaphore>() {
            let Ok(semaphore) = self.semaphore(&name) else {
                continue;
            };
            all.push(match &*semaphore {
                Semaphore::Local(s) => ObjectStats {
                    value: Some(s.value().into()),
                    max: Some(s.max().into()),
                    ..ObjectStats::new("semaphore", &name, true)
                },
                Semaphore::Redis(_) => ObjectStats::new("semaphore", &name, false),
            });
        }
        for name in self.names::<Event>() {
            let Ok(event) = self.event(&name) else {
                continue;
            };
            all.push(match &*event {
                Event::Local(e) => ObjectStats {
                    value: Some(e.is_set().into()),
                    ..ObjectStats::new("event", &name, true)
                },
                Event::Redis(_) => ObjectStats::new("event", &name, false),
            });
        }
        for name in self.names::<Barrier>() {
            let Ok(barrier) = self.barrier(&name) else {
                continue;
            };
            all.push(match &*barrier {
                Barrier::Local(b) => ObjectStats {
                    value: Some(b.waiting().into()),
                    max: Some(b.parties().into()),
                    ..ObjectStats::new("barrier", &name, true)
                },
                Barrier::Redis(_) => ObjectStats::new("barrier", &name, false),
            });
        }
        for name in self.names::<Condition>() {
            if self.condition(&name).is_ok() {
                all.push(ObjectStats::new("condition", &name, true));
            }
        }
        all
    }
}
