//! How a worker's failure reads: the exit status of the error that ended it
//! (exit, trap with its demangled backtrace, or a limit), and why it could
//! not start. Reads only the error, the worker's spec and its meter: no
//! store, nothing of the bindings.

use std::time::Duration;

use super::Runtime;
use crate::meter::WorkerMeter;
use crate::output::BrokenPipe;
use crate::status::{ExitStatus, Frame, KillReason};
use crate::worker::WorkerSpec;

impl Runtime {
    pub(super) fn start_failure(
        &self,
        err: wasmtime::Error,
        spec: &WorkerSpec,
        meter: &WorkerMeter,
    ) -> ExitStatus {
        if err
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return ExitStatus::FailedToStart {
                reason: format!(
                    "the host is at its capacity of {} live workers; wait for some to end or \
                     raise the capacity (--max-workers)",
                    self.inner.max_workers
                ),
            };
        }
        if err.downcast_ref::<wasmtime::Trap>().is_some() || meter.denied_memory().is_some() {
            return classify_failure(err, spec, meter);
        }
        ExitStatus::FailedToStart {
            reason: format!("{err:#}"),
        }
    }
}

/// Raised from the epoch callback when a worker exhausts its CPU budget.
#[derive(Debug)]
pub(super) struct CpuLimitReached;

impl std::fmt::Display for CpuLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU time limit reached")
    }
}

impl std::error::Error for CpuLimitReached {}

pub(super) fn duration_ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis() as u64)
}

/// Turns the error that ended a worker's `main` (or a pool task) into its
/// exit status.
pub(crate) fn classify_failure(
    err: wasmtime::Error,
    spec: &WorkerSpec,
    meter: &WorkerMeter,
) -> ExitStatus {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return ExitStatus::Exited { code: exit.0 };
    }
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel)
        && let Some(limit) = spec.policy.fuel
    {
        return ExitStatus::Killed {
            reason: KillReason::Fuel { limit },
        };
    }
    if let Some(pipe) = err.downcast_ref::<BrokenPipe>() {
        return ExitStatus::Killed {
            reason: KillReason::BrokenPipe {
                stream: pipe.stream.name().into(),
            },
        };
    }
    if err.downcast_ref::<CpuLimitReached>().is_some() {
        return ExitStatus::Killed {
            reason: KillReason::CpuTime {
                limit_ms: duration_ms(spec.limits.cpu_time),
            },
        };
    }
    let message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => {
            let text = trap.to_string();
            text.strip_prefix("wasm trap: ")
                .unwrap_or(&text)
                .to_string()
        }
        None => err.root_cause().to_string(),
    };
    if let (Some(limit), Some(requested)) = (spec.limits.memory, meter.denied_memory()) {
        return ExitStatus::Killed {
            reason: KillReason::Memory {
                limit,
                requested,
                detail: message,
            },
        };
    }
    let backtrace: Vec<Frame> = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|frame| Frame {
                    function: frame.func_name().map(demangle),
                    module: frame.module().name().map(str::to_string),
                    index: frame.func_index(),
                    offset: frame.func_offset(),
                })
                .collect()
        })
        .unwrap_or_default();
    let message = explain_stack_overflow(message, err.downcast_ref::<wasmtime::Trap>(), &backtrace);
    ExitStatus::Trapped { message, backtrace }
}

/// Frames of one function in a backtrace that mark runaway recursion.
const RECURSION_DEPTH: usize = 16;

/// Guests that keep their stack in linear memory (Rust, C) overflow it into
/// an out-of-bounds access, which says nothing of recursion. Name the likely
/// cause when the backtrace is one function over and over.
fn explain_stack_overflow(
    message: String,
    trap: Option<&wasmtime::Trap>,
    backtrace: &[Frame],
) -> String {
    if trap == Some(&wasmtime::Trap::StackOverflow) {
        return format!("stack overflow: {message}");
    }
    let deepest = backtrace
        .iter()
        .map(|frame| backtrace.iter().filter(|f| f.index == frame.index).count())
        .max()
        .unwrap_or(0);
    if trap == Some(&wasmtime::Trap::MemoryOutOfBounds) && deepest >= RECURSION_DEPTH {
        return format!(
            "{message} (likely a stack overflow: one function is {deepest} frames deep)"
        );
    }
    message
}

/// A readable function name: Rust and C++ symbols demangled (without the
/// Rust hash suffix), others as they are.
fn demangle(name: &str) -> String {
    if let Ok(demangled) = rustc_demangle::try_demangle(name) {
        return format!("{demangled:#}");
    }
    if let Ok(symbol) = cpp_demangle::Symbol::new(name)
        && let Ok(demangled) = symbol.demangle()
    {
        return demangled;
    }
    name.to_string()
}
