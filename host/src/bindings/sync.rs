//! `corral:worker/sync` onto the semaphore, event, barrier and condition of
//! [`crate::ipc`].

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::sync::{Host, HostBarrier, HostCondition, HostEvent, HostSemaphore};
use super::readiness::{Readiness, subscribe};
use super::{Call, reply, timeout};
use crate::ipc::{BarrierHandle, Condition, Event, Guard, Semaphore};
use crate::runtime::WorkerState;

/// A worker's handle on a named semaphore.
pub struct SemaphoreRef(Arc<Semaphore>);
/// A worker's handle on a named event.
pub struct EventRef(Arc<Event>);
/// A worker's handle on a named condition.
pub struct ConditionRef(Arc<Condition>);

impl Host for WorkerState {}

impl HostSemaphore for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<SemaphoreRef>> {
        match self.run.objects().semaphore(&name) {
            Ok(s) => Ok(Ok(self.table.push(SemaphoreRef(s))?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn acquire(&mut self, s: Resource<SemaphoreRef>, wait: Option<u64>) -> Call<()> {
        let s = self.table.get(&s)?.0.clone();
        reply(s.acquire(timeout(wait)).await)
    }

    fn try_acquire(&mut self, s: Resource<SemaphoreRef>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&s)?.0.try_acquire())
    }

    fn release(&mut self, s: Resource<SemaphoreRef>) -> Call<()> {
        reply(self.table.get(&s)?.0.release())
    }

    fn value(&mut self, s: Resource<SemaphoreRef>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&s)?.0.value())
    }

    fn subscribe(&mut self, s: Resource<SemaphoreRef>) -> wasmtime::Result<Resource<DynPollable>> {
        let s = self.table.get(&s)?.0.clone();
        subscribe(&mut self.table, Readiness::Permit(s))
    }

    fn drop(&mut self, s: Resource<SemaphoreRef>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl HostEvent for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<EventRef>> {
        match self.run.objects().event(&name) {
            Ok(e) => Ok(Ok(self.table.push(EventRef(e))?)),
            Err(e) => reply(Err(e)),
        }
    }

    fn set(&mut self, e: Resource<EventRef>) -> wasmtime::Result<()> {
        self.table.get(&e)?.0.set();
        Ok(())
    }

    fn clear(&mut self, e: Resource<EventRef>) -> wasmtime::Result<()> {
        self.table.get(&e)?.0.clear();
        Ok(())
    }

    fn is_set(&mut self, e: Resource<EventRef>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&e)?.0.is_set())
    }

    async fn wait(&mut self, e: Resource<EventRef>, wait: Option<u64>) -> wasmtime::Result<bool> {
        let e = self.table.get(&e)?.0.clone();
        Ok(e.wait(timeout(wait)).await.unwrap_or(false))
    }

    fn subscribe(&mut self, e: Resource<EventRef>) -> wasmtime::Result<Resource<DynPollable>> {
        let e = self.table.get(&e)?.0.clone();
        subscribe(&mut self.table, Readiness::EventSet(e))
    }

    fn drop(&mut self, e: Resource<EventRef>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}

impl HostBarrier for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<BarrierHandle>> {
        match self.run.objects().barrier(&name) {
            Ok(b) => Ok(Ok(self.table.push(b.handle())?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn wait(&mut self, b: Resource<BarrierHandle>, wait: Option<u64>) -> Call<u32> {
        let handle = self.table.get_mut(&b)?;
        reply(handle.wait(timeout(wait)).await)
    }

    fn parties(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&b)?.barrier().parties())
    }

    fn waiting(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&b)?.barrier().waiting())
    }

    fn abort(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<()> {
        self.table.get(&b)?.barrier().abort();
        Ok(())
    }

    fn reset(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<()> {
        self.table.get(&b)?.barrier().reset();
        Ok(())
    }

    fn subscribe(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<Resource<DynPollable>> {
        let barrier = self.table.get(&b)?.barrier().clone();
        let round = barrier.round();
        subscribe(&mut self.table, Readiness::BarrierRound(barrier, round))
    }

    fn drop(&mut self, b: Resource<BarrierHandle>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl HostCondition for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<ConditionRef>> {
        match self.run.objects().condition(&name) {
            Ok(c) => Ok(Ok(self.table.push(ConditionRef(c))?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn wait(
        &mut self,
        c: Resource<ConditionRef>,
        guard: Resource<Guard>,
        wait: Option<u64>,
    ) -> Call<bool> {
        let condition = self.table.get(&c)?.0.clone();
        let guard = self.table.get_mut(&guard)?;
        reply(condition.wait(guard, timeout(wait)).await)
    }

    fn notify(&mut self, c: Resource<ConditionRef>, n: u32) -> wasmtime::Result<u32> {
        Ok(self.table.get(&c)?.0.notify(n))
    }

    fn notify_all(&mut self, c: Resource<ConditionRef>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&c)?.0.notify_all())
    }

    fn drop(&mut self, c: Resource<ConditionRef>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
