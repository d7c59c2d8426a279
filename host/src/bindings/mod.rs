//! Thin adapters from the WIT interfaces in `wit/` to the host's objects.
//! Each `corral:worker` interface lands in the module of the same name.

mod process;

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::WorkerState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "corral:worker/imports",
        with: { "wasi:cli": wasmtime_wasi::p2::bindings::cli },
    });
}

pub(crate) use generated::corral::worker as corral_worker;

/// Adds WASI 0.2 (from wasmtime-wasi) and every Corral interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    corral_worker::process::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, |state| {
        state
    })?;
    Ok(())
}
