//! `corral:worker/lock` onto [`crate::ipc::Lock`].

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::lock::{Host, HostGuard, HostLock};
use super::readiness::{Readiness, subscribe};
use super::{Call, reply, timeout};
use crate::ipc::{Guard, Lock};
use crate::runtime::WorkerState;

/// A worker's handle on a named lock.
pub struct LockRef(Arc<Lock>);

impl Host for WorkerState {}

impl HostLock for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<LockRef>> {
        match self.run.objects().lock(&name) {
            Ok(lock) => Ok(Ok(self.table.push(LockRef(lock))?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn acquire(
        &mut self,
        lock: Resource<LockRef>,
        wait: Option<u64>,
    ) -> Call<Resource<Guard>> {
        let lock = self.table.get(&lock)?.0.clone();
        match lock.acquire(self.id, timeout(wait)).await {
            Ok(guard) => Ok(Ok(self.table.push(guard)?)),
            Err(e) => reply(Err(e)),
        }
    }

    fn try_acquire(&mut self, lock: Resource<LockRef>) -> Call<Option<Resource<Guard>>> {
        let lock = self.table.get(&lock)?.0.clone();
        match lock.try_acquire(self.id) {
            Ok(Some(guard)) => Ok(Ok(Some(self.table.push(guard)?))),
            Ok(None) => Ok(Ok(None)),
            Err(e) => reply(Err(e)),
        }
    }

    fn subscribe(&mut self, lock: Resource<LockRef>) -> wasmtime::Result<Resource<DynPollable>> {
        let lock = self.table.get(&lock)?.0.clone();
        subscribe(&mut self.table, Readiness::LockFree(lock))
    }

    fn drop(&mut self, lock: Resource<LockRef>) -> wasmtime::Result<()> {
        self.table.delete(lock)?;
        Ok(())
    }
}

impl HostGuard for WorkerState {
    fn previous_owner_died(&mut self, guard: Resource<Guard>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&guard)?.previous_owner_died())
    }

    /// The guest dropping its guard is a normal release; a guard that is
    /// still in the table when the worker ends was abandoned (see `Guard`).
    fn drop(&mut self, guard: Resource<Guard>) -> wasmtime::Result<()> {
        self.table.delete(guard)?.release();
        Ok(())
    }
}
