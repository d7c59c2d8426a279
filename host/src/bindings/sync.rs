//! `corral:worker/sync` onto the semaphore, event, barrier and condition of
//! [`crate::ipc`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::sync::{Host, HostBarrier, HostCondition, HostEvent, HostSemaphore};
use super::readiness::{Readiness, subscribe};
use super::{BarrierRes, Call, ConditionRes, EventRes, IpcCtxView, SemaphoreRes, reply, timeout};
use crate::ipc::Guard;
use crate::policy::Op;

impl Host for IpcCtxView<'_> {}

impl HostSemaphore for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<SemaphoreRes>> {
        self.open_granted(&name, |objects| objects.semaphore(&name))
    }

    async fn acquire(&mut self, s: Resource<SemaphoreRes>, wait: Option<u64>) -> Call<()> {
        let res = self.table.get(&s)?;
        let sem = res.object.clone();
        match self.check(res, Op::Acquire) {
            Ok(()) => {
                let acquired = sem.acquire(timeout(wait));
                reply(
                    self.ctx
                        .activity
                        .track("semaphore.acquire", sem.name(), acquired)
                        .await,
                )
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn try_acquire(&mut self, s: Resource<SemaphoreRes>) -> Call<bool> {
        match self.granted(&s, Op::Acquire)? {
            Ok(res) => reply(res.object.try_acquire().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn release(&mut self, s: Resource<SemaphoreRes>) -> Call<()> {
        match self.granted(&s, Op::Release)? {
            Ok(res) => reply(res.object.release().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn value(&mut self, s: Resource<SemaphoreRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&s)?.object.value().await)
    }

    fn subscribe(&mut self, s: Resource<SemaphoreRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let sem = self.table.get(&s)?.object.clone();
        subscribe(self.table, Readiness::Permit(sem))
    }

    fn drop(&mut self, s: Resource<SemaphoreRes>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl HostEvent for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<EventRes>> {
        self.open_granted(&name, |objects| objects.event(&name))
    }

    async fn set(&mut self, e: Resource<EventRes>) -> Call<()> {
        match self.granted(&e, Op::Set)? {
            Ok(res) => reply(res.object.set().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn clear(&mut self, e: Resource<EventRes>) -> Call<()> {
        match self.granted(&e, Op::Set)? {
            Ok(res) => reply(res.object.clear().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn is_set(&mut self, e: Resource<EventRes>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&e)?.object.is_set().await)
    }

    async fn wait(&mut self, e: Resource<EventRes>, wait: Option<u64>) -> Call<bool> {
        let res = self.table.get(&e)?;
        let event = res.object.clone();
        match self.check(res, Op::Wait) {
            Ok(()) => {
                let set = event.wait(timeout(wait));
                reply(
                    self.ctx
                        .activity
                        .track("event.wait", event.name(), set)
                        .await,
                )
            }
            Err(e) => reply(Err(e)),
        }
    }

    fn subscribe(&mut self, e: Resource<EventRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let event = self.table.get(&e)?.object.clone();
        subscribe(self.table, Readiness::EventSet(event))
    }

    fn drop(&mut self, e: Resource<EventRes>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}

impl HostBarrier for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<BarrierRes>> {
        self.open_granted(&name, |objects| objects.barrier(&name).map(|b| b.handle()))
    }

    async fn wait(&mut self, b: Resource<BarrierRes>, wait: Option<u64>) -> Call<u32> {
        let res = self.table.get(&b)?;
        if let Err(e) = self.check(res, Op::Wait) {
            return reply(Err(e));
        }
        let res = self.table.get_mut(&b)?;
        let name = res.object.barrier().name().to_string();
        let passed = res.object.wait(timeout(wait));
        reply(self.ctx.activity.track("barrier.wait", &name, passed).await)
    }

    fn parties(&mut self, b: Resource<BarrierRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&b)?.object.barrier().parties())
    }

    async fn waiting(&mut self, b: Resource<BarrierRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&b)?.object.barrier().waiting().await)
    }

    async fn abort(&mut self, b: Resource<BarrierRes>) -> Call<()> {
        let res = self.table.get(&b)?;
        let barrier = res.object.barrier();
        match self.check(res, Op::Abort) {
            Ok(()) => reply(barrier.abort().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn reset(&mut self, b: Resource<BarrierRes>) -> Call<()> {
        let res = self.table.get(&b)?;
        let barrier = res.object.barrier();
        match self.check(res, Op::Abort) {
            Ok(()) => reply(barrier.reset().await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn subscribe(
        &mut self,
        b: Resource<BarrierRes>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let barrier = self.table.get(&b)?.object.barrier().clone();
        let round = barrier.round().await;
        subscribe(self.table, Readiness::BarrierRound(barrier, round))
    }

    fn drop(&mut self, b: Resource<BarrierRes>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl HostCondition for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<ConditionRes>> {
        self.open_granted(&name, |objects| objects.condition(&name))
    }

    async fn wait(
        &mut self,
        c: Resource<ConditionRes>,
        guard: Resource<Guard>,
        wait: Option<u64>,
    ) -> Call<bool> {
        let res = self.table.get(&c)?;
        let condition = res.object.clone();
        if let Err(e) = self.check(res, Op::Wait) {
            return reply(Err(e));
        }
        let guard = self.table.get_mut(&guard)?;
        let notified = condition.wait(guard, timeout(wait));
        reply(
            self.ctx
                .activity
                .track("condition.wait", condition.name(), notified)
                .await,
        )
    }

    fn notify(&mut self, c: Resource<ConditionRes>, n: u32) -> Call<u32> {
        let res = self.table.get(&c)?;
        reply(self.check(res, Op::Notify).map(|()| res.object.notify(n)))
    }

    fn notify_all(&mut self, c: Resource<ConditionRes>) -> Call<u32> {
        let res = self.table.get(&c)?;
        reply(
            self.check(res, Op::Notify)
                .map(|()| res.object.notify_all()),
        )
    }

    fn drop(&mut self, c: Resource<ConditionRes>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
