//! How things ended and what they were: a worker's exit status and the
//! reason it was killed, its wasm backtrace frames, and what a load found
//! (the kind of input, the compile cache's answer). A leaf: it depends on
//! no other module of the crate, so `runtime`, `worker`, `events` and
//! `policy` can all use it without importing each other.

use std::time::Duration;

use serde::Serialize;

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExitStatus {
    /// `main` returned or the worker called `exit`.
    Exited {
        /// The exit code (0 is success).
        code: i32,
    },
    /// The worker's code trapped: `unreachable`, a Rust panic, an
    /// out-of-bounds access, a stack overflow...
    Trapped {
        /// What the trap was.
        message: String,
        /// Where in the worker's wasm it happened, innermost frame first.
        backtrace: Vec<Frame>,
    },
    /// The host stopped the worker.
    Killed {
        /// Which limit, or `terminate`.
        reason: KillReason,
    },
    /// The worker never ran: the host could not instantiate it.
    FailedToStart {
        /// Why.
        reason: String,
    },
}

/// Why the host stopped a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum KillReason {
    /// [`Worker::terminate`](crate::Worker::terminate) was called.
    Terminated,
    /// The worker used more CPU time than its budget.
    CpuTime {
        /// The budget, in milliseconds.
        limit_ms: u64,
    },
    /// The worker ran longer than its wall-clock timeout.
    WallTime {
        /// The timeout, in milliseconds.
        limit_ms: u64,
    },
    /// The worker used up its fuel (its policy's instruction budget).
    Fuel {
        /// The budget.
        limit: u64,
    },
    /// The worker died after the host refused it memory past its cap.
    Memory {
        /// The cap, in bytes.
        limit: u64,
        /// The total the refused grow asked for, in bytes.
        requested: u64,
        /// How the worker died of it (its trap message).
        detail: String,
    },
    /// The worker wrote to a host stream (`stdout`, `stderr`) whose reader
    /// is gone, as a native program dies of SIGPIPE.
    BrokenPipe {
        /// Which stream.
        stream: String,
    },
    /// Its supervisor group restarted it because another member failed
    /// (the status of the start that was cut short).
    GroupRestart {
        /// The group that restarted it.
        group: String,
        /// The member whose failure did.
        failed: String,
    },
    /// Its supervisor group gave up, past its restart intensity.
    GroupGaveUp {
        /// The top group, which gave up.
        group: String,
    },
}

/// One frame of a worker's wasm backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The function's name from the module's name section, demangled.
    pub function: Option<String>,
    /// The core module's name, when it has one.
    pub module: Option<String>,
    /// The function's index in its module.
    pub index: u32,
    /// Byte offset of the trapping instruction within the function.
    pub offset: Option<usize>,
}

impl ExitStatus {
    /// Whether the worker exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited { code: 0 })
    }

    /// Whether its supervisor group stopped it on giving up: the member
    /// that made the group give up failed, not this one.
    pub fn stopped_by_group(&self) -> bool {
        matches!(
            self,
            ExitStatus::Killed {
                reason: KillReason::GroupGaveUp { .. }
            }
        )
    }

    /// A one-line summary, e.g. `exited 0` or `killed: CPU time limit 2s`.
    pub fn summary(&self) -> String {
        match self {
            ExitStatus::Exited { code } => format!("exited {code}"),
            ExitStatus::Trapped { message, .. } => format!("trapped: {message}"),
            ExitStatus::Killed { reason } => format!("killed: {reason}"),
            ExitStatus::FailedToStart { reason } => format!("failed to start: {reason}"),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())?;
        if let ExitStatus::Trapped { backtrace, .. } = self {
            if !backtrace.is_empty() {
                f.write_str("\nwasm backtrace:")?;
            }
            // Deep recursion fills the backtrace with one frame repeated:
            // show each run of identical frames once, with its count.
            let mut i = 0;
            while i < backtrace.len() {
                let run = backtrace[i..]
                    .iter()
                    .take_while(|fr| **fr == backtrace[i])
                    .count();
                write!(f, "\n  {i:>2}: {}", backtrace[i])?;
                if run > 1 {
                    write!(f, "  (x{run}, frames {i}-{})", i + run - 1)?;
                }
                i += run;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "<function {}>", self.index)?,
        }
        if let Some(module) = &self.module {
            write!(f, " in {module}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at +{offset:#x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillReason::Terminated => write!(f, "terminated"),
            KillReason::CpuTime { limit_ms } => {
                write!(f, "CPU time limit of {} exceeded", human_ms(*limit_ms))
            }
            KillReason::Fuel { limit } => write!(f, "fuel limit of {limit} exhausted"),
            KillReason::WallTime { limit_ms } => {
                write!(f, "wall-time limit of {} exceeded", human_ms(*limit_ms))
            }
            KillReason::Memory {
                limit,
                requested,
                detail,
            } => write!(
                f,
                "memory limit of {} exceeded (asked for {} in all): {detail}",
                bytesize::ByteSize(*limit).display().iec(),
                bytesize::ByteSize(*requested).display().iec()
            ),
            KillReason::BrokenPipe { stream } => {
                write!(f, "broken pipe: nothing reads its {stream}")
            }
            KillReason::GroupRestart { group, failed } => {
                write!(f, "restarted with its group `{group}`: `{failed}` failed")
            }
            KillReason::GroupGaveUp { group } => {
                write!(f, "stopped: its group `{group}` gave up")
            }
        }
    }
}

fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Whether a load found its compiled code in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Compiled code came from the cache: no compilation happened.
    Hit,
    /// The component was compiled and the result stored in the cache.
    Miss,
    /// Caching is turned off (`--no-cache`); the component was compiled.
    Disabled,
}

/// What kind of input a file held before the host turned it into a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A WebAssembly component (binary).
    Component,
    /// A WASI preview1 core module, adapted into a component by the host.
    CoreModule,
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputKind::Component => "component",
            InputKind::CoreModule => "core module (WASI preview1)",
        })
    }
}
