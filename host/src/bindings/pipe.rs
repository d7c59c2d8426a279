//! `corral:worker/pipe` onto [`crate::ipc::Pipe`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::pipe::{Host, HostEndpoint};
use super::readiness::{Readiness, subscribe};
use super::{Call, reply, timeout};
use crate::ipc::PipeEnd;
use crate::runtime::WorkerState;

impl Host for WorkerState {}

impl HostEndpoint for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<PipeEnd>> {
        let end = self
            .run
            .objects()
            .pipe(&name)
            .and_then(|pipe| pipe.open(self.id, &self.name));
        match end {
            Ok(end) => Ok(Ok(self.table.push(end)?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn send(
        &mut self,
        end: Resource<PipeEnd>,
        message: Vec<u8>,
        wait: Option<u64>,
    ) -> Call<()> {
        let end = self.table.get(&end)?;
        reply(end.send(message, timeout(wait)).await)
    }

    async fn recv(&mut self, end: Resource<PipeEnd>, wait: Option<u64>) -> Call<Vec<u8>> {
        let end = self.table.get(&end)?;
        reply(end.recv(timeout(wait)).await.map(Vec::from))
    }

    fn try_recv(&mut self, end: Resource<PipeEnd>) -> Call<Option<Vec<u8>>> {
        reply(self.table.get(&end)?.try_recv().map(|m| m.map(Vec::from)))
    }

    fn close(&mut self, end: Resource<PipeEnd>) -> wasmtime::Result<()> {
        self.table.get_mut(&end)?.close();
        Ok(())
    }

    fn subscribe(&mut self, end: Resource<PipeEnd>) -> wasmtime::Result<Resource<DynPollable>> {
        let inbound = self.table.get(&end)?.inbound();
        subscribe(&mut self.table, Readiness::PipeRecv(inbound))
    }

    fn drop(&mut self, end: Resource<PipeEnd>) -> wasmtime::Result<()> {
        self.table.delete(end)?;
        Ok(())
    }
}
