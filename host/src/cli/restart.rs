//! The restart flags of `corral run` (`--restart`, `--max-restarts`...):
//! a worker's [`RestartPolicy`] from the command line.

use std::time::Duration;

use clap::Args;

use crate::restart::{Restart, RestartPolicy};
use crate::units::parse_duration;

/// When a worker is started again after it ends (Erlang/OTP's restart
/// types and intensity); a manifest's workers take the same keys.
#[derive(Debug, Args)]
pub(super) struct RestartArgs {
    /// Start a worker again after it ends: never, on-failure (a non-zero
    /// exit, a trap or a limit kill) or always (a clean exit too); it reads
    /// its restart count in CORRAL_RESTARTS
    #[arg(long, value_name = "POLICY", default_value = "never")]
    restart: Restart,
    /// Give a worker up after this many restarts within --restart-within
    #[arg(long, value_name = "N", default_value_t = RestartPolicy::DEFAULT.max_restarts)]
    max_restarts: u32,
    /// The window of --max-restarts
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    restart_within: Duration,
    /// The delay before a first restart, doubled for each restart in the
    /// window (0: restart at once)
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    backoff: Duration,
    /// The longest delay between restarts
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    max_backoff: Duration,
}

impl RestartArgs {
    /// The policy the flags give.
    pub(super) fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            when: self.restart,
            max_restarts: self.max_restarts,
            within: self.restart_within,
            backoff: self.backoff,
            max_backoff: self.max_backoff,
        }
    }
}
