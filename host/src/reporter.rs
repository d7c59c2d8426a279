//! The reporter of one worker: what its policy refused, and the sockets it
//! listens on, as [`Event`]s. A leaf: it depends on `events` only, so the
//! bindings, the policy checks and the runtime can all report.
//!
//! Denials are rate-limited per worker by a token bucket: a worker in a loop
//! of refused calls would otherwise make the host format and hold an event
//! per call. The first [`DENIAL_BURST`] pass, then [`DENIALS_PER_SECOND`];
//! the rest are counted, and the count goes out as one
//! [`Event::Suppressed`] before the next denial that passes, or when the
//! worker ends.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::events::{Event, EventSink};

/// Denial events one worker may send at once, before the rate applies.
pub(crate) const DENIAL_BURST: u32 = 20;
/// Denial events one worker may send per second, once its burst is spent.
pub(crate) const DENIALS_PER_SECOND: u32 = 10;

/// Reports what a worker's policy refused, as events.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub id: u64,
    pub name: Arc<str>,
    pub sink: Option<Arc<dyn EventSink>>,
    /// The worker's denial bucket, shared by every clone.
    denials: Arc<DenialBucket>,
}

/// The token bucket of one worker's denial events; sends what it held back
/// when the last reporter of the worker goes.
struct DenialBucket {
    id: u64,
    name: Arc<str>,
    sink: Option<Arc<dyn EventSink>>,
    state: Mutex<BucketState>,
}

struct BucketState {
    /// Denials that may pass now (fractions accrue between denials).
    tokens: f64,
    /// When `tokens` was last topped up.
    refilled: Instant,
    /// Denials held back since the last summary.
    suppressed: u64,
}

impl DenialBucket {
    /// Takes a token if there is one. `Some(n)`: the denial passes, after a
    /// summary of the `n` held back before it (if any). `None`: counted.
    fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(state.refilled).as_secs_f64() * DENIALS_PER_SECOND as f64;
        state.tokens = (state.tokens + earned).min(DENIAL_BURST as f64);
        state.refilled = now;
        if state.tokens < 1.0 {
            state.suppressed += 1;
            return None;
        }
        state.tokens -= 1.0;
        Some(std::mem::take(&mut state.suppressed))
    }

    fn summarize(&self, sink: &dyn EventSink, denials: u64) {
        if denials > 0 {
            sink.event(&Event::Suppressed {
                id: self.id,
                name: self.name.to_string(),
                denials,
            });
        }
    }
}

impl Drop for DenialBucket {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let held_back = std::mem::take(&mut state.suppressed);
        if let Some(sink) = &self.sink {
            self.summarize(sink.as_ref(), held_back);
        }
    }
}

impl Reporter {
    /// The reporter of worker `id`, named `name`, sending to `sink`.
    pub fn new(id: u64, name: Arc<str>, sink: Option<Arc<dyn EventSink>>) -> Reporter {
        let denials = Arc::new(DenialBucket {
            id,
            name: name.clone(),
            sink: sink.clone(),
            state: Mutex::new(BucketState {
                tokens: DENIAL_BURST as f64,
                refilled: Instant::now(),
                suppressed: 0,
            }),
        });
        Reporter {
            id,
            name,
            sink,
            denials,
        }
    }

    /// Records that the worker listens on `addr`.
    pub fn listening(&self, addr: std::net::SocketAddr) {
        if let Some(sink) = &self.sink {
            sink.event(&Event::Listening {
                id: self.id,
                name: self.name.to_string(),
                addr: addr.to_string(),
            });
        }
    }

    /// Records that `rule` refused `action`, unless the worker's denials are
    /// over their rate (then it is only counted).
    pub fn deny(&self, rule: &str, action: impl Into<String>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let Some(held_back) = self.denials.admit() else {
            return;
        };
        self.denials.summarize(sink.as_ref(), held_back);
        sink.event(&Event::Denied {
            id: self.id,
            name: self.name.to_string(),
            rule: rule.to_string(),
            action: action.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventLog;

    #[test]
    fn a_denial_loop_sends_a_burst_then_one_summary() {
        let log = EventLog::new();
        let reporter = Reporter::new(7, Arc::from("looper"), Some(log.clone()));
        for i in 0..10_000 {
            reporter.clone().deny("ipc", format!("open queue `q{i}`"));
        }
        let passed = |log: &EventLog| {
            log.events()
                .iter()
                .filter(|e| matches!(e, Event::Denied { .. }))
                .count() as u64
        };
        let sent = passed(&log);
        // The loop takes far less than a second here: the burst, and at most
        // a few more earned while it ran.
        assert!(
            (DENIAL_BURST as u64..DENIAL_BURST as u64 + 10).contains(&sent),
            "{sent}"
        );
        drop(reporter);
        let summarized: u64 = log
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Suppressed { name, denials, .. } if name == "looper" => Some(*denials),
                _ => None,
            })
            .sum();
        assert_eq!(
            passed(&log) + summarized,
            10_000,
            "every denial is accounted for"
        );
        assert!(log.events().len() < 2 * (DENIAL_BURST as usize + 10));
    }
}
