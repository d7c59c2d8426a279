//! Restart policies: when a worker that ended is started again, how long
//! it waits first, and when its supervisor gives up (Erlang/OTP's restart
//! types and intensity). A leaf: it knows exit statuses and time, nothing
//! of wasmtime or of the runtime that applies it.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::status::{ExitStatus, KillReason};

/// The environment variable that tells each start of a worker with a
/// restart policy its number: 0 for the first start.
pub const RESTARTS_VAR: &str = "CORRAL_RESTARTS";

/// When a worker that ended is started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never: an ended worker stays ended (Python's `Process`).
    #[default]
    Never,
    /// After a failure: a non-zero exit, a trap or a limit kill; not after
    /// a clean exit, `terminate` or a broken pipe.
    OnFailure,
    /// After any end but `terminate` and a broken pipe, a clean exit too
    /// (OTP's permanent children).
    Always,
}

impl FromStr for Restart {
    type Err = String;

    fn from_str(text: &str) -> Result<Restart, String> {
        match text {
            "never" => Ok(Restart::Never),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            other => Err(format!(
                "`{other}` is not a restart policy: never, on-failure or always"
            )),
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        })
    }
}

/// A worker's restart policy: when it restarts, the backoff before each
/// restart, and the intensity past which its supervisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// When it restarts.
    pub when: Restart,
    /// At most this many restarts within [`within`](Self::within); one
    /// more and the worker is given up, ending with its last status.
    pub max_restarts: u32,
    /// The window of the intensity limit.
    pub within: Duration,
    /// The delay before the first restart of a burst, doubled for each
    /// restart still in the window (zero: restart at once).
    pub backoff: Duration,
    /// The longest delay, whatever the doubling says.
    pub max_backoff: Duration,
}

impl RestartPolicy {
    /// OTP's default intensity (at most 5 restarts in 60 s, where OTP
    /// counts 1 in 5 s: a worker is cheaper to restart than an OS
    /// process), a 10 ms first backoff and a 5 s cap.
    pub const DEFAULT: RestartPolicy = RestartPolicy {
        when: Restart::Never,
        max_restarts: 5,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(5),
    };

    /// The policy a manifest's keys give, [`DEFAULT`](Self::DEFAULT)'s
    /// values where they are silent.
    pub fn from_keys(
        when: Restart,
        max_restarts: Option<u32>,
        within: Option<Duration>,
        (backoff, max_backoff): (Option<Duration>, Option<Duration>),
    ) -> RestartPolicy {
        let default = RestartPolicy::DEFAULT;
        RestartPolicy {
            when,
            max_restarts: max_restarts.unwrap_or(default.max_restarts),
            within: within.unwrap_or(default.within),
            backoff: backoff.unwrap_or(default.backoff),
            max_backoff: max_backoff.unwrap_or(default.max_backoff),
        }
    }

    /// Whether a worker that ended with `status` is to be started again.
    pub fn wants_restart(&self, status: &ExitStatus) -> bool {
        let ended_by_host = matches!(
            status,
            ExitStatus::FailedToStart { .. }
                | ExitStatus::Killed {
                    reason: KillReason::Terminated | KillReason::BrokenPipe { .. },
                }
        );
        match self.when {
            Restart::Never => false,
            _ if ended_by_host => false,
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
        }
    }
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy::DEFAULT
    }
}

/// The restarts of one worker so far: what the intensity limit and the
/// backoff are computed from.
#[derive(Debug, Default)]
pub struct RestartHistory {
    /// When each restart within the window happened, oldest first.
    recent: VecDeque<Instant>,
    /// Restarts since the worker was first started.
    total: u32,
}

impl RestartHistory {
    /// Restarts since the first start.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Records a restart at `now` unless it would be the
    /// `max_restarts + 1`th within `within` (then: `false`, nothing
    /// recorded): OTP's intensity, for supervisors without a backoff (a
    /// pool replacing its task instances).
    pub fn record(&mut self, max_restarts: u32, within: Duration, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= max_restarts as usize {
            return false;
        }
        self.recent.push_back(now);
        self.total += 1;
        true
    }

    /// Records a restart at `now` and returns the delay before it, or
    /// `None` when it would pass the policy's intensity (the worker is
    /// given up). The delay doubles with each restart still in the window,
    /// up to the cap, and is jittered by up to a quarter either way so
    /// that workers that failed together do not restart in lockstep.
    pub fn next(&mut self, policy: &RestartPolicy, now: Instant) -> Option<Duration> {
        if !self.record(policy.max_restarts, policy.within, now) {
            return None;
        }
        // The restarts in the window before this one.
        let doublings = u32::try_from(self.recent.len() - 1)
            .unwrap_or(u32::MAX)
            .min(30);
        let delay = policy
            .backoff
            .saturating_mul(1 << doublings)
            .min(policy.max_backoff);
        Some(jitter(delay, self.total))
    }
}

/// `delay` moved by up to a quarter either way, by a cheap hash of the
/// clock and `salt`: spreading matters here, unpredictability does not.
fn jitter(delay: Duration, salt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed =
        (u64::from(nanos) ^ u64::from(salt).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // A fraction in [-0.25, 0.25) of the delay.
    let fraction = (mixed >> 11) as f64 / (1u64 << 53) as f64 * 0.5 - 0.25;
    delay.mul_f64(1.0 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(when: Restart) -> RestartPolicy {
        RestartPolicy {
            when,
            ..RestartPolicy::DEFAULT
        }
    }

    #[test]
    fn which_ends_restart_under_each_policy() {
        let clean = ExitStatus::Exited { code: 0 };
        let failed = ExitStatus::Exited { code: 3 };
        let trapped = ExitStatus::Trapped {
            message: "unreachable".into(),
            backtrace: Vec::new(),
        };
        let limit = ExitStatus::Killed {
            reason: KillReason::CpuTime { limit_ms: 10 },
        };
        let terminated = ExitStatus::Killed {
            reason: KillReason::Terminated,
        };
        let no_start = ExitStatus::FailedToStart {
            reason: "bad".into(),
        };
        let cases = [
            (Restart::Never, [false, false, false, false, false, false]),
            (Restart::OnFailure, [false, true, true, true, false, false]),
            (Restart::Always, [true, true, true, true, false, false]),
        ];
        for (when, expected) in cases {
            let got = [&clean, &failed, &trapped, &limit, &terminated, &no_start]
                .map(|status| policy(when).wants_restart(status));
            assert_eq!(got, expected, "{when}");
        }
    }

    #[test]
    fn backoff_doubles_within_the_window_up_to_the_cap_and_intensity_gives_up() {
        let p = RestartPolicy {
            when: Restart::Always,
            max_restarts: 4,
            within: Duration::from_secs(10),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let mut history = RestartHistory::default();
        let start = Instant::now();
        let delays: Vec<Duration> = (0..4)
            .map(|i| history.next(&p, start + Duration::from_secs(i)).unwrap())
            .collect();
        for (delay, base) in delays.iter().zip([100, 200, 300, 300]) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base.mul_f64(0.75) && *delay <= base.mul_f64(1.25),
                "{delay:?} for {base:?}"
            );
        }
        assert_eq!(history.next(&p, start + Duration::from_secs(4)), None);
        assert_eq!(history.total(), 4);
        // Once the first restarts leave the window, restarts go on, and the
        // backoff is computed from those still in it.
        let later = history.next(&p, start + Duration::from_secs(11)).unwrap();
        assert!(later <= Duration::from_millis(375), "{later:?}");
        assert_eq!(history.total(), 5);
    }

    #[test]
    fn zero_backoff_restarts_at_once_and_names_parse() {
        let p = RestartPolicy {
            backoff: Duration::ZERO,
            ..policy(Restart::OnFailure)
        };
        let mut history = RestartHistory::default();
        assert_eq!(history.next(&p, Instant::now()), Some(Duration::ZERO));
        for name in ["never", "on-failure", "always"] {
            assert_eq!(name.parse::<Restart>().unwrap().to_string(), name);
        }
        assert!(
            "sometimes"
                .parse::<Restart>()
                .unwrap_err()
                .contains("on-failure")
        );
    }
}
