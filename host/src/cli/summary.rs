//! The summary a run prints on stderr when it ends: a line per worker
//! (failures in full, with the wasm backtrace) and the totals.

use super::launch::Ui;
use crate::status::{ExitStatus, KillReason};
use crate::worker::WorkerReport;

/// Whether the worker died writing to a stream nobody reads.
fn broken_pipe(status: &ExitStatus) -> bool {
    matches!(
        status,
        ExitStatus::Killed {
            reason: KillReason::BrokenPipe { .. }
        }
    )
}

/// One line per worker on stderr, failures in full (with the wasm
/// backtrace). A single worker that exits prints nothing, whatever its
/// code, like any program (as under `wasmtime run`: its exit code says
/// it), and one killed by a broken pipe says nothing either, as a shell
/// says nothing of a program killed by SIGPIPE.
pub(super) fn print_summary(ui: Ui, names: &[String], reports: &[WorkerReport]) {
    let single = reports.len() == 1;
    let says_nothing = |r: &WorkerReport| {
        r.status.success()
            || broken_pipe(&r.status)
            || (single && matches!(r.status, ExitStatus::Exited { .. }))
    };
    if ui.quiet || (single && reports.iter().all(says_nothing)) {
        for (name, report) in names.iter().zip(reports).filter(|(_, r)| !says_nothing(r)) {
            eprintln!("corral: {name} {}", report.status);
        }
        return;
    }
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (name, report) in names.iter().zip(reports) {
        let ms = report.duration.as_secs_f64() * 1e3;
        let full = report.status.to_string();
        let (summary, details) = full.split_once('\n').unwrap_or((&full, ""));
        let restarts = match report.restarts {
            0 => String::new(),
            1 => ", 1 restart".into(),
            n => format!(", {n} restarts"),
        };
        eprintln!("{name:width$}  {summary}  ({ms:.1} ms{restarts})");
        for line in details.lines() {
            eprintln!("{:width$}  {line}", "");
        }
    }
    if reports.len() > 1 {
        let ok = reports.iter().filter(|r| r.status.success()).count();
        let restarts: u64 = reports.iter().map(|r| u64::from(r.restarts)).sum();
        let restarts = match restarts {
            0 => String::new(),
            n => format!(", {n} restarts"),
        };
        eprintln!(
            "corral: {} workers, {ok} exited 0, {} failed{restarts}",
            reports.len(),
            reports.len() - ok
        );
    }
}

const EXIT_FAILED_TO_START: u8 = 3;
const EXIT_TRAPPED: u8 = 134;
const EXIT_KILLED: u8 = 137;
/// What a shell reports for a program killed by SIGPIPE (128 + 13).
const EXIT_BROKEN_PIPE: u8 = 141;

/// The exit code of a run that was not stopped by a signal: that of the
/// worker that could not start, if one could not, else of the first worker
/// (in start order) that failed, else 0. Members stopped because their
/// group gave up did not fail: the member whose failure made it give up
/// did, and its status is the run's.
pub(super) fn run_exit_code(reports: &[WorkerReport], failed_start: Option<usize>) -> u8 {
    let first_failure = match failed_start {
        Some(i) => Some(&reports[i]),
        None => (reports.iter().filter(|r| !r.status.success()))
            .find(|r| !r.status.stopped_by_group())
            .or_else(|| reports.iter().find(|r| !r.status.success())),
    };
    first_failure.map_or(0, |r| exit_code(&r.status))
}

fn exit_code(status: &ExitStatus) -> u8 {
    match status {
        ExitStatus::Exited { code } => u8::try_from(*code).ok().filter(|&c| c != 0).unwrap_or(1),
        ExitStatus::Killed {
            reason: KillReason::BrokenPipe { .. },
        } => EXIT_BROKEN_PIPE,
        ExitStatus::Trapped { .. } => EXIT_TRAPPED,
        ExitStatus::Killed { .. } => EXIT_KILLED,
        ExitStatus::FailedToStart { .. } => EXIT_FAILED_TO_START,
    }
}
