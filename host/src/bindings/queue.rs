//! `corral:worker/queue` onto [`crate::ipc::Queue`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::queue::{Host, HostQueue};
use super::corral_worker::types::Batch;
use super::readiness::{Readiness, subscribe};
use super::{Call, Granted, IpcCtxView, QueueRes, reply, timeout};
use crate::ipc::IpcError;
use crate::policy::{ObjectKind, Op};

impl Host for IpcCtxView<'_> {}

/// Splits a batch into its messages, checking that the lengths add up.
fn unbatch(batch: Batch) -> Result<Vec<Vec<u8>>, IpcError> {
    let total: u64 = batch.lengths.iter().map(|&n| n as u64).sum();
    if total != batch.data.len() as u64 {
        return Err(IpcError::Invalid(format!(
            "batch lengths add up to {total} bytes but data holds {}",
            batch.data.len()
        )));
    }
    let mut rest = &batch.data[..];
    Ok(batch
        .lengths
        .iter()
        .map(|&n| {
            let (message, tail) = rest.split_at(n as usize);
            rest = tail;
            message.to_vec()
        })
        .collect())
}

/// Joins messages into one batch: two guest allocations for any number.
fn batch(messages: Vec<bytes::Bytes>) -> Batch {
    let mut data = Vec::with_capacity(messages.iter().map(|m| m.len()).sum());
    let lengths = messages
        .iter()
        .map(|m| {
            data.extend_from_slice(m);
            m.len() as u32
        })
        .collect();
    Batch { data, lengths }
}

impl HostQueue for IpcCtxView<'_> {
    fn open(&mut self, name: String) -> Call<Resource<QueueRes>> {
        let opened = self.ctx.objects.queue(&name).and_then(|queue| {
            let ops = self.grant(ObjectKind::Queue, &name)?;
            Ok(Granted {
                object: queue.handle(),
                ops,
            })
        });
        match opened {
            Ok(res) => Ok(Ok(self.table.push(res)?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn put(
        &mut self,
        q: Resource<QueueRes>,
        message: Vec<u8>,
        wait: Option<u64>,
    ) -> Call<()> {
        let activity = &self.ctx.activity;
        match self.granted(&q, Op::Put)? {
            Ok(res) => {
                let put = res.object.put(message, timeout(wait));
                reply(
                    activity
                        .track("queue.put", res.object.queue().name(), put)
                        .await,
                )
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn try_put(&mut self, q: Resource<QueueRes>, message: Vec<u8>) -> Call<bool> {
        match self.granted(&q, Op::Put)? {
            Ok(res) => reply(res.object.try_put(message).await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn put_many(
        &mut self,
        q: Resource<QueueRes>,
        messages: Batch,
        wait: Option<u64>,
    ) -> Call<()> {
        let res = match self.granted(&q, Op::Put)? {
            Ok(res) => res,
            Err(e) => return reply(Err(e)),
        };
        // Before anything is allocated per message: a batch of millions of
        // empty messages from a small guest must cost the host nothing.
        let lengths = messages.lengths.iter().map(|&n| n as usize);
        let checked = res.object.queue().check_batch(lengths);
        match checked.and_then(|()| unbatch(messages)) {
            Ok(messages) => {
                let put = res.object.put_many(messages, timeout(wait));
                let name = res.object.queue().name();
                reply(self.ctx.activity.track("queue.put", name, put).await)
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn get(&mut self, q: Resource<QueueRes>, wait: Option<u64>) -> Call<Vec<u8>> {
        let activity = &self.ctx.activity;
        match self.granted(&q, Op::Get)? {
            Ok(res) => {
                let get = res.object.get(timeout(wait));
                let got = activity.track("queue.get", res.object.queue().name(), get);
                reply(got.await.map(Vec::from))
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn try_get(&mut self, q: Resource<QueueRes>) -> Call<Option<Vec<u8>>> {
        match self.granted(&q, Op::Get)? {
            Ok(res) => reply(res.object.try_get().await.map(|m| m.map(Vec::from))),
            Err(e) => reply(Err(e)),
        }
    }

    async fn get_many(
        &mut self,
        q: Resource<QueueRes>,
        max: u32,
        wait: Option<u64>,
    ) -> Call<Batch> {
        let activity = &self.ctx.activity;
        match self.granted(&q, Op::Get)? {
            Ok(res) => {
                let get = res.object.get_many(max as usize, timeout(wait));
                let got = activity.track("queue.get", res.object.queue().name(), get);
                reply(got.await.map(batch))
            }
            Err(e) => reply(Err(e)),
        }
    }

    async fn len(&mut self, q: Resource<QueueRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&q)?.object.queue().len().await as u32)
    }

    fn capacity(&mut self, q: Resource<QueueRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&q)?.object.queue().capacity() as u32)
    }

    fn task_done(&mut self, q: Resource<QueueRes>) -> Call<()> {
        reply(
            self.granted(&q, Op::Get)?
                .and_then(|res| res.object.task_done()),
        )
    }

    async fn join(&mut self, q: Resource<QueueRes>, wait: Option<u64>) -> Call<()> {
        let queue = self.table.get(&q)?.object.queue().clone();
        let joined = queue.join(timeout(wait));
        reply(
            self.ctx
                .activity
                .track("queue.join", queue.name(), joined)
                .await,
        )
    }

    async fn close(&mut self, q: Resource<QueueRes>) -> Call<()> {
        match self.granted(&q, Op::Close)? {
            Ok(res) => reply(res.object.queue().try_close().await),
            Err(e) => reply(Err(e)),
        }
    }

    fn subscribe_get(&mut self, q: Resource<QueueRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&q)?.object.queue().clone();
        subscribe(self.table, Readiness::QueueGet(queue))
    }

    fn subscribe_put(&mut self, q: Resource<QueueRes>) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&q)?.object.queue().clone();
        subscribe(self.table, Readiness::QueuePut(queue))
    }

    fn drop(&mut self, q: Resource<QueueRes>) -> wasmtime::Result<()> {
        self.table.delete(q)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let b = batch(vec![
            bytes::Bytes::from_static(b"ab"),
            bytes::Bytes::new(),
            bytes::Bytes::from_static(b"c"),
        ]);
        assert_eq!(b.data, b"abc");
        assert_eq!(b.lengths, vec![2, 0, 1]);
        assert_eq!(
            unbatch(b).unwrap(),
            vec![b"ab".to_vec(), vec![], b"c".to_vec()]
        );
        let bad = Batch {
            data: vec![1, 2],
            lengths: vec![3],
        };
        assert!(matches!(unbatch(bad), Err(IpcError::Invalid(_))));
    }
}
