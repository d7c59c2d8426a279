//! Lifecycle events: what happened to which worker, for `--events json`,
//! for embedders, and for tests that observe the host from outside. Depends
//! only on the leaf `status`, never on the runtime or the worker, so both
//! can report through it.

use std::sync::Arc;

use serde::Serialize;

use crate::status::{CacheOutcome, ExitStatus, InputKind};

/// Something that happened in the host. Serialized as one JSON object with an
/// `"event"` field naming the variant.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A program was loaded: compiled, or mapped from the compile cache.
    Loaded {
        /// The file (or name) it was loaded from.
        path: String,
        /// What the file held.
        kind: InputKind,
        /// Whether the compile cache served it.
        cache: CacheOutcome,
        /// How long loading took, in microseconds.
        micros: u64,
    },
    /// A worker was created and is about to run.
    Started {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
    },
    /// A worker tried something its policy does not grant, or hit a limit
    /// that did not kill it (an output cap, a refused memory grow).
    Denied {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
        /// The policy rule that said no (e.g. `network.connect`).
        rule: String,
        /// What was attempted (e.g. `connect 10.0.0.1:443`).
        action: String,
    },
    /// A worker's denials came faster than its event rate allows (see
    /// `reporter`): this many were counted but not sent one by one.
    Suppressed {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
        /// Denials held back since the previous event of the worker.
        denials: u64,
    },
    /// A worker put a TCP socket in listening mode (granted by its policy).
    Listening {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
        /// The local address, e.g. `127.0.0.1:9000`.
        addr: String,
    },
    /// A worker ended.
    Exited {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// Wall time from spawn to exit, in microseconds.
        micros: u64,
        /// CPU time spent running its code, in microseconds.
        cpu_micros: u64,
        /// The most linear memory it held at once, in bytes.
        peak_memory: u64,
        /// How often it was restarted before this end.
        restarts: u32,
    },
    /// A worker ended and its restart policy starts it again after
    /// `delay_ms` (its last start's own `exited` event is not sent).
    Restarting {
        /// Host-unique worker id (kept across restarts).
        id: u64,
        /// The worker's name.
        name: String,
        /// How the start that just ended ended.
        status: ExitStatus,
        /// This restart's number: 1 for the first.
        restart: u32,
        /// The backoff before the new start, in milliseconds.
        delay_ms: u64,
    },
    /// A worker ended once more than its restart intensity allows: it is
    /// given up, and its `exited` event follows with that last status.
    GaveUp {
        /// Host-unique worker id.
        id: u64,
        /// The worker's name.
        name: String,
        /// The restarts it had.
        restarts: u32,
        /// The limit it passed: at most `max_restarts` within `within_ms`.
        max_restarts: u32,
        /// The intensity window, in milliseconds.
        within_ms: u64,
    },
    /// A member of a supervisor group failed, and the group restarts the
    /// members its strategy names (each also gets its own `restarting`).
    GroupRestarting {
        /// The group.
        group: String,
        /// Its strategy: `one-for-one`, `one-for-all` or `rest-for-one`.
        strategy: String,
        /// The member whose failure started it.
        cause: String,
        /// How that member ended.
        status: ExitStatus,
        /// The group's restart number: 1 for the first.
        restart: u32,
        /// The members restarted, in the group's order.
        members: Vec<String>,
    },
    /// A group passed its restart intensity: it fails upward, as a member
    /// of the group above it, or, at the top, stops every member.
    GroupGaveUp {
        /// The group.
        group: String,
        /// The member whose failure passed the limit.
        cause: String,
        /// The restarts the group had.
        restarts: u32,
        /// At most `max_restarts` within `within_ms`.
        max_restarts: u32,
        /// The intensity window, in milliseconds.
        within_ms: u64,
    },
    /// The host was asked to stop (a signal): every worker is asked to
    /// finish up within `grace_ms`, or terminated at once when it is 0.
    ShutdownRequested {
        /// The signal: `SIGINT` or `SIGTERM`.
        signal: String,
        /// What it means for the run, e.g. `terminated (SIGTERM)`.
        reason: String,
        /// The grace period, in milliseconds.
        grace_ms: u64,
        /// The workers still running.
        workers: usize,
    },
    /// The grace period ran out (or a second signal came): the workers
    /// still running are terminated.
    ShutdownTerminating {
        /// Why now: `grace period over` or the second signal.
        reason: String,
        /// The workers terminated.
        workers: usize,
    },
}

/// A receiver of events. Called synchronously from the worker's task: keep it
/// quick and never block.
pub trait EventSink: Send + Sync {
    /// Handles one event.
    fn event(&self, event: &Event);
}

/// Prints each event as one line of JSON on stderr.
#[derive(Debug, Default)]
pub struct JsonLines;

impl EventSink for JsonLines {
    fn event(&self, event: &Event) {
        use std::io::Write;
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            let _ = std::io::stderr().lock().write_all(&line);
        }
    }
}

/// Prints a one-line notice on stderr for each denial, listening socket,
/// restart and give-up, and nothing else: what a terminal user sees when no event format
/// is asked for.
#[derive(Debug, Default)]
pub struct Notices;

impl EventSink for Notices {
    fn event(&self, event: &Event) {
        match event {
            Event::Denied {
                name, rule, action, ..
            } => eprintln!("corral: {name}: denied {action} (policy: {rule})"),
            Event::Suppressed { name, denials, .. } => {
                eprintln!("corral: {name}: {denials} more denials suppressed")
            }
            Event::Listening { name, addr, .. } => {
                eprintln!("corral: {name} listening on {addr}")
            }
            Event::Restarting {
                name,
                status,
                restart,
                delay_ms,
                ..
            } => eprintln!(
                "corral: {name} {}; restart {restart} in {delay_ms} ms",
                status.summary()
            ),
            Event::GaveUp {
                name,
                restarts,
                max_restarts,
                within_ms,
                ..
            } => eprintln!(
                "corral: {name} given up after {restarts} restarts \
                 (at most {max_restarts} within {} s)",
                within_ms / 1000
            ),
            Event::GroupRestarting {
                group,
                strategy,
                cause,
                status,
                restart,
                members,
            } => eprintln!(
                "corral: group {group} ({strategy}): {cause} {}; restart {restart} of {}",
                status.summary(),
                members.join(", ")
            ),
            Event::GroupGaveUp {
                group,
                cause,
                restarts,
                max_restarts,
                within_ms,
            } => eprintln!(
                "corral: group {group} gave up after {restarts} restarts \
                 (at most {max_restarts} within {} s); the last: {cause} failed",
                within_ms / 1000
            ),
            Event::ShutdownRequested {
                reason,
                grace_ms,
                workers,
                ..
            } => eprintln!(
                "corral: {reason}; asking {workers} workers to stop \
                 (grace {}; signal again to stop now)",
                humantime::format_duration(std::time::Duration::from_millis(*grace_ms))
            ),
            Event::ShutdownTerminating { reason, workers } => {
                eprintln!("corral: {reason}; terminating {workers} workers")
            }
            _ => {}
        }
    }
}

/// Keeps the most recent events in memory, for tests and embedders that
/// inspect a run after the fact. Bounded: past its capacity the oldest
/// events are dropped and counted, so a long run (or a worker that makes
/// events as fast as it can) cannot grow the host without limit.
#[derive(Debug)]
pub struct EventLog {
    capacity: usize,
    state: std::sync::Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    events: std::collections::VecDeque<Event>,
    dropped: u64,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog {
            capacity: EventLog::DEFAULT_CAPACITY,
            state: Default::default(),
        }
    }
}

impl EventLog {
    /// Events a log made by [`EventLog::new`] keeps.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A new, empty log of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY)
    /// events, shareable with a runtime.
    pub fn new() -> Arc<EventLog> {
        EventLog::with_capacity(EventLog::DEFAULT_CAPACITY)
    }

    /// A new, empty log that keeps the last `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> Arc<EventLog> {
        Arc::new(EventLog {
            capacity: capacity.max(1),
            state: Default::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events kept, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.state().events.iter().cloned().collect()
    }

    /// How many of the oldest events were dropped to stay within capacity.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

impl EventSink for EventLog {
    fn event(&self, event: &Event) {
        let mut state = self.state();
        if state.events.len() == self.capacity {
            state.events.pop_front();
            state.dropped += 1;
        }
        state.events.push_back(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: u64) -> Event {
        Event::Started {
            id,
            name: format!("w{id}"),
        }
    }

    #[test]
    fn a_full_log_drops_the_oldest_and_counts_them() {
        let log = EventLog::with_capacity(3);
        for id in 0..5 {
            log.event(&started(id));
        }
        let ids: Vec<u64> = log
            .events()
            .iter()
            .map(|e| match e {
                Event::Started { id, .. } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(log.dropped(), 2);
    }
}
