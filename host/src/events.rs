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

/// Prints a one-line notice on stderr for each denial and each listening
/// socket, and nothing else: what a terminal user sees when no event format
/// is asked for.
#[derive(Debug, Default)]
pub struct Notices;

impl EventSink for Notices {
    fn event(&self, event: &Event) {
        match event {
            Event::Denied {
                name, rule, action, ..
            } => eprintln!("corral: {name}: denied {action} (policy: {rule})"),
            Event::Listening { name, addr, .. } => {
                eprintln!("corral: {name} listening on {addr}")
            }
            _ => {}
        }
    }
}

/// Keeps every event in memory; for tests and embedders that inspect a run
/// after the fact.
#[derive(Debug, Default)]
pub struct EventLog(std::sync::Mutex<Vec<Event>>);

impl EventLog {
    /// A new, empty log, shareable with a runtime.
    pub fn new() -> Arc<EventLog> {
        Arc::new(EventLog::default())
    }

    /// The events recorded so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EventSink for EventLog {
    fn event(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
