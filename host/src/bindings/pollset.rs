//! `corral:worker/pollset` on [`PolicedSockets`]: the host's
//! [`PollSet`](crate::pollset::PollSet) watching TCP input streams.
//!
//! wasmtime-wasi's TCP input stream cannot be reached from outside its
//! crate, so `accept` and `finish-connect` (`sockets.rs`) put each one in a
//! [`TcpInput`] as soon as it exists; the table keeps a [`WatchableInput`]
//! in its place, which the guest reads as before. Which table entries are
//! such streams is kept beside the table ([`TcpInputs`]): a boxed
//! `dyn InputStream` cannot be asked what it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use futures::FutureExt;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::io::poll::Host as _;
use wasmtime_wasi::p2::pipe::ClosedInputStream;
use wasmtime_wasi::p2::{DynInputStream, DynPollable, InputStream, Pollable, StreamResult};

use super::corral_worker::pollset::{self, Ready};
use super::corral_worker::types::Error as WitError;
use super::sockets::PolicedSockets;
use crate::ledger::{Kind, Token};
use crate::pollset::{Membership, PollSet, Source};

/// The table entry behind a guest's `pollset`: the set, and the handle it
/// is charged.
pub struct PollSetRes {
    set: PollSet,
    _charge: Token,
}

/// A TCP connection's input stream as wasmtime-wasi made it, shared by the
/// table entry the guest reads and the set that may watch it.
pub(crate) struct TcpInput {
    stream: Mutex<DynInputStream>,
    membership: Membership,
}

impl TcpInput {
    fn stream(&self) -> MutexGuard<'_, DynInputStream> {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Source for TcpInput {
    /// wasmtime-wasi's TCP readiness is tokio's `poll_read_ready`, which
    /// keeps the waker it was last given: the future can go at once.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.stream().ready().as_mut().poll(cx)
    }

    fn membership(&self) -> &Membership {
        &self.membership
    }
}

/// What the table holds for a TCP input stream: reads and readiness go to
/// the stream, and each tells a watching set to check it again (a read
/// may drain the socket, and the stream's own pollable takes the socket's
/// waker from the set's entry).
pub(crate) struct WatchableInput(Arc<TcpInput>);

#[async_trait::async_trait]
impl InputStream for WatchableInput {
    fn read(&mut self, size: usize) -> StreamResult<bytes::Bytes> {
        let read = self.0.stream().read(size);
        self.0.membership.touch();
        read
    }
}

#[async_trait::async_trait]
impl Pollable for WatchableInput {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| {
            self.0.membership.touch();
            self.0.poll_ready(cx)
        })
        .await
    }
}

/// The TCP input streams in a worker's table, by their index there. An
/// entry whose stream is gone is dead: its index may since hold anything.
#[derive(Default)]
pub(crate) struct TcpInputs(HashMap<u32, Weak<TcpInput>>);

impl TcpInputs {
    /// Records `input` at `rep`, dropping dead entries now and then so the
    /// map never outgrows the table by more than twice.
    fn insert(&mut self, rep: u32, input: &Arc<TcpInput>) {
        let len = self.0.len();
        if len >= 1024 && len.is_power_of_two() {
            self.0.retain(|_, input| input.strong_count() > 0);
        }
        self.0.insert(rep, Arc::downgrade(input));
    }

    /// The live TCP input stream at `rep`, if that is what is there.
    fn get(&self, rep: u32) -> Option<Arc<TcpInput>> {
        self.0.get(&rep).and_then(Weak::upgrade)
    }
}

impl PolicedSockets<'_> {
    /// Puts the TCP input stream at `input` in a [`TcpInput`], so that a
    /// pollset can watch it.
    pub(super) fn make_watchable(
        &mut self,
        input: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynInputStream>> {
        let slot = self.sockets.table.get_mut(&input)?;
        let stream = std::mem::replace(slot, Box::new(ClosedInputStream));
        let tcp = Arc::new(TcpInput {
            stream: Mutex::new(stream),
            membership: Membership::default(),
        });
        *slot = Box::new(WatchableInput(tcp.clone()));
        self.held.inputs.insert(input.rep(), &tcp);
        Ok(input)
    }

    /// The TCP input stream behind `input`: `invalid` if it is another kind
    /// of stream; a trap if it is no input stream of this worker's.
    fn tcp_input(
        &self,
        input: &Resource<DynInputStream>,
    ) -> wasmtime::Result<Result<Arc<dyn Source>, WitError>> {
        self.sockets.table.get(input)?;
        Ok(match self.held.inputs.get(input.rep()) {
            Some(tcp) => Ok(tcp),
            None => Err(WitError::Invalid(
                "only a TCP connection's input stream (from accept or finish-connect) \
                 can be watched"
                    .into(),
            )),
        })
    }

    fn set(&self, this: &Resource<PollSetRes>) -> wasmtime::Result<PollSet> {
        Ok(self.sockets.table.get(this)?.set.clone())
    }
}

impl pollset::Host for PolicedSockets<'_> {}

impl pollset::HostPollset for PolicedSockets<'_> {
    fn create(&mut self) -> wasmtime::Result<Result<Resource<PollSetRes>, WitError>> {
        let Ok(charge) = self.ledger.try_acquire(Kind::Handle) else {
            return Ok(Err(WitError::Denied(Kind::Handle.rule().into())));
        };
        let set = PollSetRes {
            set: PollSet::new(),
            _charge: charge,
        };
        Ok(Ok(self.sockets.table.push(set)?))
    }

    fn watch(
        &mut self,
        this: Resource<PollSetRes>,
        input: Resource<DynInputStream>,
        token: u64,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let set = self.set(&this)?;
        Ok(self.tcp_input(&input)?.map(|tcp| set.watch(&tcp, token)))
    }

    fn unwatch(
        &mut self,
        this: Resource<PollSetRes>,
        input: Resource<DynInputStream>,
    ) -> wasmtime::Result<()> {
        let set = self.set(&this)?;
        if let Ok(tcp) = self.tcp_input(&input)? {
            set.unwatch(&*tcp);
        }
        Ok(())
    }

    fn len(&mut self, this: Resource<PollSetRes>) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.set(&this)?.len()).unwrap_or(u32::MAX))
    }

    /// Blocks the guest, not a thread. Cancel safe: a wake that arrives
    /// while the worker is stopped mid-wait stays queued in the set.
    async fn wait(
        &mut self,
        this: Resource<PollSetRes>,
        also: Vec<Resource<DynPollable>>,
        max: u32,
    ) -> wasmtime::Result<Result<Ready, WitError>> {
        let set = self.set(&this)?;
        if max == 0 {
            return Ok(Err(WitError::Invalid("max is 0".into())));
        }
        if set.is_empty() && also.is_empty() {
            return Ok(Err(WitError::Invalid(
                "nothing to wait for: the set is empty and so is `also`".into(),
            )));
        }
        let reps: Vec<u32> = also.iter().map(Resource::rep).collect();
        let also = || reps.iter().map(|&rep| Resource::new_borrow(rep)).collect();
        loop {
            let tokens = set.ready(max as usize);
            if !tokens.is_empty() {
                let also = match reps.is_empty() {
                    true => Vec::new(),
                    false => match self.sockets.table.poll(also()).now_or_never() {
                        Some(ready) => ready?,
                        None => Vec::new(),
                    },
                };
                return Ok(Ok(Ready { tokens, also }));
            }
            if reps.is_empty() {
                set.changed().await;
                continue;
            }
            tokio::select! {
                ready = self.sockets.table.poll(also()) => {
                    return Ok(Ok(Ready { tokens: Vec::new(), also: ready? }));
                }
                () = set.changed() => {}
            }
        }
    }

    fn drop(&mut self, this: Resource<PollSetRes>) -> wasmtime::Result<()> {
        self.sockets.table.delete(this)?;
        Ok(())
    }
}
