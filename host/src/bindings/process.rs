//! `corral:worker/process`: who this worker is.

use super::corral_worker::process::Host;
use crate::runtime::WorkerState;

impl Host for WorkerState {
    fn id(&mut self) -> wasmtime::Result<u64> {
        Ok(self.id)
    }

    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.name.to_string())
    }
}
