//! `subscribe` for every Corral object: a `wasi:io/poll` pollable that is
//! ready when the matching operation would not wait, so a guest can wait on
//! queues, pipes, locks, timers and sockets in one `poll`.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable};

use crate::ipc::{Barrier, Event, Lock, PipeInbound, Queue, Semaphore};

/// What a pollable waits for.
pub(super) enum Readiness {
    QueueGet(Arc<Queue>),
    QueuePut(Arc<Queue>),
    PipeRecv(PipeInbound),
    LockFree(Arc<Lock>),
    Permit(Arc<Semaphore>),
    EventSet(Arc<Event>),
    BarrierRound(Arc<Barrier>, u64),
    /// The host asked the worker to stop; never, if nothing can ask (the
    /// sender is gone: a pool instance, a test's store).
    Shutdown(tokio::sync::watch::Receiver<bool>),
}

#[async_trait::async_trait]
impl Pollable for Readiness {
    async fn ready(&mut self) {
        match self {
            Readiness::QueueGet(q) => q.ready_to_get().await,
            Readiness::QueuePut(q) => q.ready_to_put().await,
            Readiness::PipeRecv(p) => p.ready().await,
            Readiness::LockFree(l) => l.ready().await,
            Readiness::Permit(s) => s.ready().await,
            Readiness::EventSet(e) => e.ready().await,
            Readiness::BarrierRound(b, round) => b.ready_after(*round).await,
            Readiness::Shutdown(asked) => {
                if asked.wait_for(|asked| *asked).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Makes a pollable for `readiness`; it is freed with the pollable.
pub(super) fn subscribe(
    table: &mut ResourceTable,
    readiness: Readiness,
) -> wasmtime::Result<Resource<DynPollable>> {
    let resource = table.push(readiness)?;
    wasmtime_wasi::p2::subscribe(table, resource)
}
