//! The reporter of one worker: what its policy refused, and the sockets it
//! listens on, as [`Event`]s. A leaf: it depends on `events` only, so the
//! bindings, the policy checks and the runtime can all report.

use std::sync::Arc;

use crate::events::{Event, EventSink};

/// Reports what a worker's policy refused, as events.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub id: u64,
    pub name: Arc<str>,
    pub sink: Option<Arc<dyn EventSink>>,
}

impl Reporter {
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

    /// Records that `rule` refused `action`.
    pub fn deny(&self, rule: &str, action: impl Into<String>) {
        if let Some(sink) = &self.sink {
            sink.event(&Event::Denied {
                id: self.id,
                name: self.name.to_string(),
                rule: rule.to_string(),
                action: action.into(),
            });
        }
    }
}
