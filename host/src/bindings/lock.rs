//! `corral:worker/lock` onto [`crate::ipc::Lock`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::lock::{Host, HostGuard, HostLock};
use super::readiness::{Readiness, subscribe};
use super::{Call, IpcCtxView, LockRes, reply, timeout};
use crate::ipc::Guard;
use crate::policy::Op;

impl Host for IpcCtxView<'_> {}

impl HostLock for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<LockRes>> {
        self.open_granted(&name, |objects| objects.lock(&name))
    }

    async fn acquire(
        &mut self,
        lock: Resource<LockRes>,
        wait: Option<u64>,
    ) -> Call<Resource<Guard>> {
        let res = self.table.get(&lock)?;
        let lock = res.object.clone();
        if let Err(e) = self.check(res, Op::Acquire) {
            return reply(Err(e));
        }
        let acquired = lock.acquire(self.ctx.id, timeout(wait));
        match self
            .ctx
            .activity
            .track("lock.acquire", lock.name(), acquired)
            .await
        {
            Ok(guard) => Ok(Ok(self.table.push(guard)?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn try_acquire(&mut self, lock: Resource<LockRes>) -> Call<Option<Resource<Guard>>> {
        let res = self.table.get(&lock)?;
        let lock = res.object.clone();
        if let Err(e) = self.check(res, Op::Acquire) {
            return reply(Err(e));
        }
        match lock.try_acquire(self.ctx.id).await {
            Ok(Some(guard)) => Ok(Ok(Some(self.table.push(guard)?))),
            Ok(None) => Ok(Ok(None)),
            Err(e) => reply(Err(e)),
        }
    }

    fn subscribe(&mut self, lock: Resource<LockRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let lock = self.table.get(&lock)?.object.clone();
        subscribe(self.table, Readiness::LockFree(lock))
    }

    fn drop(&mut self, lock: Resource<LockRes>) -> wasmtime::Result<()> {
        self.table.delete(lock)?;
        Ok(())
    }
}

impl HostGuard for IpcCtxView<'_> {
    fn previous_owner_died(&mut self, guard: Resource<Guard>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&guard)?.previous_owner_died())
    }

    fn fencing_token(&mut self, guard: Resource<Guard>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&guard)?.fencing_token())
    }

    /// The guest dropping its guard is a normal release; a guard that is
    /// still in the table when the worker ends was abandoned (see `Guard`).
    /// A plain call, never waiting: a Redis release goes on in the
    /// background, and the worker's end waits for it.
    fn drop(&mut self, guard: Resource<Guard>) -> wasmtime::Result<()> {
        if let Some(release) = self.table.delete(guard)?.release_soon() {
            self.ctx.releases.push(release);
        }
        Ok(())
    }
}
