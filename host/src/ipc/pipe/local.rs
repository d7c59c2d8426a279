//! The pipe, in this process: a [`Fifo`] per direction and who holds each
//! end. The semantics are in [`super`](super).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::PipeConfig;
use crate::ipc::fifo::{Bounds, Fifo, FifoStats};
use crate::ipc::{IpcError, WorkerId, with_timeout};

/// A named duplex pipe.
pub struct Pipe {
    name: String,
    ends_granted: Option<[String; 2]>,
    /// A dropped end goes back to its worker (see [`PipeConfig::regrant`]).
    regrant: bool,
    /// `to[i]` carries messages towards end `i`.
    to: [Fifo; 2],
    /// Who holds each end; an end can be opened once.
    holders: Mutex<[EndState; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndState {
    Free,
    Open(WorkerId),
    Closed,
}

impl Pipe {
    /// Creates a pipe.
    pub fn new(name: impl Into<String>, config: PipeConfig) -> Arc<Pipe> {
        let bounds = Bounds::new(config.capacity, config.max_bytes, config.max_message);
        Arc::new(Pipe {
            name: name.into(),
            regrant: config.regrant && config.ends.is_some(),
            ends_granted: config.ends,
            to: [Fifo::new(bounds), Fifo::new(bounds)],
            holders: Mutex::new([EndState::Free; 2]),
        })
    }

    /// The pipe's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Both directions together: messages and bytes buffered, sent and
    /// received. Never waits.
    pub(crate) fn stats(&self) -> FifoStats {
        let [a, b] = [self.to[0].stats(), self.to[1].stats()];
        FifoStats {
            len: a.len + b.len,
            bytes: a.bytes + b.bytes,
            pushed: a.pushed + b.pushed,
            popped: a.popped + b.popped,
        }
    }

    /// Messages buffered per direction before `send` waits.
    pub fn capacity(&self) -> usize {
        self.to[0].capacity()
    }

    /// Gives the worker `worker` (named `worker_name`) its end of the pipe.
    /// Never blocks.
    pub fn open(
        self: &Arc<Self>,
        worker: WorkerId,
        worker_name: &str,
    ) -> Result<PipeEnd, IpcError> {
        let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        let side = match &self.ends_granted {
            Some(names) => {
                let Some(side) = names.iter().position(|n| n == worker_name) else {
                    return Err(IpcError::Denied(format!(
                        "pipe `{}` connects `{}` and `{}`; worker `{worker_name}` holds neither end",
                        self.name, names[0], names[1]
                    )));
                };
                side
            }
            None => holders
                .iter()
                .position(|h| *h == EndState::Free)
                .ok_or_else(|| {
                    IpcError::Invalid(format!(
                        "both ends of pipe `{}` are already taken",
                        self.name
                    ))
                })?,
        };
        match holders[side] {
            EndState::Free => {
                holders[side] = EndState::Open(worker);
                Ok(PipeEnd {
                    pipe: self.clone(),
                    side,
                    closed: false,
                })
            }
            EndState::Open(_) => Err(IpcError::Invalid(format!(
                "this end of pipe `{}` is already open",
                self.name
            ))),
            EndState::Closed => Err(IpcError::Closed),
        }
    }
}

impl Pipe {
    /// Closes for good the end granted to `worker_name`, of a pipe that
    /// re-grants its ends: the host calls it when that worker has ended
    /// and will not start again. The peer drains what was sent, then sees
    /// `Closed`. Does nothing to other pipes. Never blocks.
    pub fn close_end_of(&self, worker_name: &str) {
        let Some(names) = self.ends_granted.as_ref().filter(|_| self.regrant) else {
            return;
        };
        let Some(side) = names.iter().position(|n| n == worker_name) else {
            return;
        };
        let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        holders[side] = EndState::Closed;
        self.to[side].close();
        self.to[1 - side].close();
    }
}

/// One end of a pipe. Dropping it closes it (or, in a pipe that re-grants
/// its ends, frees it for its worker's next start).
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    side: usize,
    closed: bool,
}

impl PipeEnd {
    fn inbox(&self) -> &Fifo {
        &self.pipe.to[self.side]
    }

    fn outbound(&self) -> &Fifo {
        &self.pipe.to[1 - self.side]
    }

    /// The pipe this end belongs to.
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }

    /// Sends a message to the other end, waiting while its buffer is full.
    /// `Closed` once the other end is gone (nobody would read it).
    ///
    /// Cancel safety: if this future is dropped, the message was not sent.
    pub async fn send(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), IpcError> {
        if self.closed {
            return Err(IpcError::Closed);
        }
        match self.outbound().try_push_one(Bytes::from(message))? {
            None => Ok(()),
            // Boxed so that this future stays small: the host moves it on
            // every call, and most calls never wait.
            Some(item) => Box::pin(with_timeout(timeout, self.outbound().push_one(item))).await,
        }
    }

    /// Receives the next message, waiting for one. After the other end
    /// closed: what it sent, then `Closed`.
    ///
    /// Cancel safety: if this future is dropped, no message was taken.
    pub async fn recv(&self, timeout: Option<Duration>) -> Result<Bytes, IpcError> {
        if self.closed {
            return Err(IpcError::Closed);
        }
        match self.inbox().try_pop_one()? {
            Some(item) => Ok(item),
            None => Box::pin(with_timeout(timeout, self.inbox().pop_one())).await,
        }
    }

    /// Receives a message if one is there now.
    pub fn try_recv(&self) -> Result<Option<Bytes>, IpcError> {
        if self.closed {
            return Err(IpcError::Closed);
        }
        self.inbox().try_pop_one()
    }

    /// A watcher of this end's inbound messages, for pollables: it outlives
    /// borrows of the end.
    pub fn inbound(&self) -> PipeInbound {
        PipeInbound {
            pipe: self.pipe.clone(),
            side: self.side,
        }
    }

    /// Closes this end: the peer drains what was sent, then sees `Closed`.
    /// In a pipe that re-grants its ends, the end goes back to its worker
    /// instead, and the peer sees nothing. Never blocks; closing twice is
    /// harmless.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut holders = self.pipe.holders.lock().unwrap_or_else(|e| e.into_inner());
        if self.pipe.regrant {
            if holders[self.side] != EndState::Closed {
                holders[self.side] = EndState::Free;
            }
            return;
        }
        // No more messages from us, and none will be read by us.
        self.outbound().close();
        self.inbox().close();
        holders[self.side] = EndState::Closed;
    }
}

/// Watches the messages arriving at one end of a pipe.
pub struct PipeInbound {
    pipe: Arc<Pipe>,
    side: usize,
}

impl PipeInbound {
    /// Resolves when a `recv` on the end would not wait.
    pub async fn ready(&self) {
        self.pipe.to[self.side].ready_to_pop().await
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Option<Duration> = Some(Duration::from_millis(20));

    /// A pipe with both ends open: worker 1's and worker 2's.
    fn opened_by_two() -> (Arc<Pipe>, PipeEnd, PipeEnd) {
        let pipe = Pipe::new("p", PipeConfig::default());
        let a = pipe.open(1, "a").unwrap();
        let b = pipe.open(2, "b").unwrap();
        (pipe, a, b)
    }

    #[tokio::test]
    async fn duplex_in_order() {
        let (pipe, a, b) = opened_by_two();
        a.send(b"ping".to_vec(), None).await.unwrap();
        a.send(b"ping2".to_vec(), None).await.unwrap();
        assert_eq!(b.recv(None).await.unwrap(), &b"ping"[..]);
        b.send(b"pong".to_vec(), None).await.unwrap();
        assert_eq!(a.recv(None).await.unwrap(), &b"pong"[..]);
        assert_eq!(b.recv(None).await.unwrap(), &b"ping2"[..]);
        assert_eq!(a.recv(SHORT).await, Err(IpcError::Timeout));
        assert!(matches!(pipe.open(3, "c"), Err(IpcError::Invalid(_))));
    }

    #[tokio::test]
    async fn peer_close_drains_then_closed() {
        let (_pipe, a, b) = opened_by_two();
        a.send(b"1".to_vec(), None).await.unwrap();
        a.send(b"2".to_vec(), None).await.unwrap();
        drop(a);
        assert_eq!(b.recv(None).await.unwrap(), &b"1"[..]);
        assert_eq!(b.recv(None).await.unwrap(), &b"2"[..]);
        assert_eq!(b.recv(None).await, Err(IpcError::Closed));
        assert_eq!(b.send(b"x".to_vec(), None).await, Err(IpcError::Closed));
    }

    #[tokio::test]
    async fn blocked_recv_wakes_on_peer_death() {
        let (_pipe, a, b) = opened_by_two();
        let waiter = tokio::spawn(async move { b.recv(None).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(a);
        assert_eq!(waiter.await.unwrap(), Err(IpcError::Closed));
    }

    #[tokio::test]
    async fn granted_ends_are_enforced() {
        let config = PipeConfig {
            ends: Some(["ping".into(), "pong".into()]),
            ..PipeConfig::default()
        };
        let pipe = Pipe::new("p", config);
        assert!(matches!(pipe.open(9, "intruder"), Err(IpcError::Denied(_))));
        let pong = pipe.open(2, "pong").unwrap();
        let ping = pipe.open(1, "ping").unwrap();
        ping.send(b"hi".to_vec(), None).await.unwrap();
        assert_eq!(pong.recv(None).await.unwrap(), &b"hi"[..]);
    }

    #[tokio::test]
    async fn a_regranted_end_goes_back_to_its_worker_until_it_ends_for_good() {
        let config = PipeConfig {
            ends: Some(["a".into(), "b".into()]),
            regrant: true,
            ..PipeConfig::default()
        };
        let pipe = Pipe::new("p", config);
        let (a, b) = (pipe.open(1, "a").unwrap(), pipe.open(2, "b").unwrap());
        a.send(b"from a".to_vec(), None).await.unwrap();
        // `a` dies holding its end: `b` sees no close, and what `b` sends
        // waits for `a`'s next start.
        drop(a);
        b.send(b"to the next a".to_vec(), None).await.unwrap();
        assert_eq!(b.recv(None).await.unwrap(), &b"from a"[..]);
        assert_eq!(b.recv(SHORT).await, Err(IpcError::Timeout));
        assert!(matches!(pipe.open(9, "c"), Err(IpcError::Denied(_))));
        let again = pipe.open(3, "a").unwrap();
        assert_eq!(again.recv(None).await.unwrap(), &b"to the next a"[..]);
        assert!(matches!(pipe.open(4, "a"), Err(IpcError::Invalid(_))));
        again.send(b"last".to_vec(), None).await.unwrap();
        drop(again);
        // `a` ended for good: `b` drains, then sees the close, and `a`
        // cannot come back.
        pipe.close_end_of("a");
        pipe.close_end_of("nobody");
        assert_eq!(b.recv(None).await.unwrap(), &b"last"[..]);
        assert_eq!(b.recv(None).await, Err(IpcError::Closed));
        assert_eq!(b.send(b"x".to_vec(), None).await, Err(IpcError::Closed));
        assert_eq!(pipe.open(5, "a").err(), Some(IpcError::Closed));
    }

    #[tokio::test]
    async fn full_direction_blocks_send_until_read() {
        let config = PipeConfig {
            capacity: 1,
            max_message: 4,
            ..PipeConfig::default()
        };
        let pipe = Pipe::new("p", config);
        let a = pipe.open(1, "a").unwrap();
        let b = pipe.open(2, "b").unwrap();
        a.send(b"1".to_vec(), None).await.unwrap();
        assert_eq!(a.send(b"2".to_vec(), SHORT).await, Err(IpcError::Timeout));
        assert_eq!(
            a.send(b"12345".to_vec(), None).await,
            Err(IpcError::TooLarge(4))
        );
        assert_eq!(b.recv(None).await.unwrap(), &b"1"[..]);
        a.send(b"2".to_vec(), SHORT).await.unwrap();
    }
}
