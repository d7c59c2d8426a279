//! `corral:worker/pipe` onto [`crate::ipc::Pipe`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::pipe::{Host, HostEndpoint};
use super::readiness::{Readiness, subscribe};
use super::{Call, Granted, IpcCtxView, PipeRes, reply, timeout};
use crate::policy::{ObjectKind, Op};

impl Host for IpcCtxView<'_> {}

impl HostEndpoint for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<PipeRes>> {
        let opened = self.ctx.objects.pipe(&name).and_then(|pipe| {
            let ops = self.grant(ObjectKind::Pipe, &name)?;
            Ok(Granted {
                object: pipe.open(self.ctx.id, &self.ctx.name)?,
                ops,
            })
        });
        match opened {
            Ok(res) => Ok(Ok(self.table.push(res)?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn send(
        &mut self,
        end: Resource<PipeRes>,
        message: Vec<u8>,
        wait: Option<u64>,
    ) -> Call<()> {
        let activity = &self.ctx.activity;
        match self.granted(&end, Op::Send)? {
            Ok(res) => {
                let sent = res.object.send(message, timeout(wait));
                reply(
                    activity
                        .track("pipe.send", res.object.pipe().name(), sent)
                        .await,
                )
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn recv(&mut self, end: Resource<PipeRes>, wait: Option<u64>) -> Call<Vec<u8>> {
        let activity = &self.ctx.activity;
        match self.granted(&end, Op::Recv)? {
            Ok(res) => {
                let received = res.object.recv(timeout(wait));
                let received = activity.track("pipe.recv", res.object.pipe().name(), received);
                reply(received.await.map(Vec::from))
            }
            Err(e) => reply(Err(e)),
        }
    }

    fn try_recv(&mut self, end: Resource<PipeRes>) -> Call<Option<Vec<u8>>> {
        reply(
            self.granted(&end, Op::Recv)?
                .and_then(|res| res.object.try_recv())
                .map(|m| m.map(Vec::from)),
        )
    }

    fn close(&mut self, end: Resource<PipeRes>) -> wasmtime::Result<()> {
        self.table.get_mut(&end)?.object.close();
        Ok(())
    }

    fn subscribe(&mut self, end: Resource<PipeRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let inbound = self.table.get(&end)?.object.inbound();
        subscribe(self.table, Readiness::PipeRecv(inbound))
    }

    fn drop(&mut self, end: Resource<PipeRes>) -> wasmtime::Result<()> {
        self.table.delete(end)?;
        Ok(())
    }
}
