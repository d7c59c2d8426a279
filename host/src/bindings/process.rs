//! `corral:worker/process`: who this worker is.

use super::corral_worker::process::Host;
use crate::runtime::WorkerState;

impl Host for WorkerState {
    fn id(&mut self) -> u64 {
        self.id
    }

    fn name(&mut self) -> String {
        self.name.to_string()
    }
}
