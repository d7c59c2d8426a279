//! `corral:worker/queue` onto [`crate::ipc::Queue`].

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::queue::{Host, HostQueue};
use super::corral_worker::types::Batch;
use super::readiness::{Readiness, subscribe};
use super::{Call, reply, timeout};
use crate::ipc::{IpcError, QueueHandle};
use crate::runtime::WorkerState;

impl Host for WorkerState {}

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

impl HostQueue for WorkerState {
    fn open(&mut self, name: String) -> Call<Resource<QueueHandle>> {
        match self.run.objects().queue(&name) {
            Ok(queue) => Ok(Ok(self.table.push(queue.handle())?)),
            Err(e) => reply(Err(e)),
        }
    }

    async fn put(
        &mut self,
        q: Resource<QueueHandle>,
        message: Vec<u8>,
        wait: Option<u64>,
    ) -> Call<()> {
        let handle = self.table.get(&q)?;
        reply(handle.put(message, timeout(wait)).await)
    }

    fn try_put(&mut self, q: Resource<QueueHandle>, message: Vec<u8>) -> Call<bool> {
        reply(self.table.get(&q)?.try_put(message))
    }

    async fn put_many(
        &mut self,
        q: Resource<QueueHandle>,
        messages: Batch,
        wait: Option<u64>,
    ) -> Call<()> {
        let handle = self.table.get(&q)?;
        match unbatch(messages) {
            Ok(messages) => reply(handle.put_many(messages, timeout(wait)).await),
            Err(e) => reply(Err(e)),
        }
    }

    async fn get(&mut self, q: Resource<QueueHandle>, wait: Option<u64>) -> Call<Vec<u8>> {
        let handle = self.table.get(&q)?;
        reply(handle.get(timeout(wait)).await.map(Vec::from))
    }

    fn try_get(&mut self, q: Resource<QueueHandle>) -> Call<Option<Vec<u8>>> {
        reply(self.table.get(&q)?.try_get().map(|m| m.map(Vec::from)))
    }

    async fn get_many(
        &mut self,
        q: Resource<QueueHandle>,
        max: u32,
        wait: Option<u64>,
    ) -> Call<Batch> {
        let handle = self.table.get(&q)?;
        reply(
            handle
                .get_many(max as usize, timeout(wait))
                .await
                .map(batch),
        )
    }

    fn len(&mut self, q: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&q)?.queue().len() as u32)
    }

    fn capacity(&mut self, q: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&q)?.queue().capacity() as u32)
    }

    fn task_done(&mut self, q: Resource<QueueHandle>) -> Call<()> {
        reply(self.table.get(&q)?.task_done())
    }

    async fn join(&mut self, q: Resource<QueueHandle>, wait: Option<u64>) -> Call<()> {
        let queue = self.table.get(&q)?.queue().clone();
        reply(queue.join(timeout(wait)).await)
    }

    fn close(&mut self, q: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.table.get(&q)?.queue().close();
        Ok(())
    }

    fn subscribe_get(
        &mut self,
        q: Resource<QueueHandle>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&q)?.queue().clone();
        subscribe(&mut self.table, Readiness::QueueGet(queue))
    }

    fn subscribe_put(
        &mut self,
        q: Resource<QueueHandle>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&q)?.queue().clone();
        subscribe(&mut self.table, Readiness::QueuePut(queue))
    }

    fn drop(&mut self, q: Resource<QueueHandle>) -> wasmtime::Result<()> {
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
