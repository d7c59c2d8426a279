//! The signals that stop a run (SIGINT, SIGTERM), listened for from before
//! the first worker starts until the run ends. Knows nothing of workers.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Which signal stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, a service manager, a CI runner's cancel).
    Terminate,
}

impl Stop {
    /// The exit code: 128 + the signal's number, as a shell reports it.
    pub(super) fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }

    /// The signal's name.
    pub(super) fn signal(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }

    /// What the run was, for the line that says it is stopping.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupted",
            Stop::Terminate => "terminated (SIGTERM)",
        }
    }
}

/// Listeners for SIGINT and SIGTERM, installed once: a signal that arrives
/// while nothing is waiting on them is kept for the next [`recv`], never
/// lost (a listener made anew on each wait misses what came in between).
///
/// [`recv`]: Signals::recv
pub(super) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Takes over SIGINT and SIGTERM from their default action (ending the
    /// process at once) for the rest of the process's life.
    pub(super) fn install() -> anyhow::Result<Signals> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot listen for {name}: {e}"))
        };
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM. If this future is dropped
    /// before it completes, no signal is lost: the next call returns it.
    pub(super) async fn recv(&mut self) -> Stop {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Stop::Interrupt,
            Some(()) = self.terminate.recv() => Stop::Terminate,
            // Both listeners end only with the runtime, which ends the run.
            else => std::future::pending().await,
        }
    }
}
