//! The host's console: one writer thread per host stream (stdout, stderr)
//! that every worker's console output goes through.
//!
//! A blocking `write` to the terminal or a pipe can stall for as long as the
//! reader likes. Done on a runtime thread, one stalled reader would wedge
//! every worker, timer and kill of the host. So workers only hand finished
//! chunks to the writer thread, and each worker's [`Backlog`] bounds what it
//! may have queued: a worker whose output is not being read waits (its stream
//! reports no room), holding no thread, while the others run on.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::StreamKind;

/// Bytes one worker may have queued for a host stream before its writes wait.
pub(crate) const BACKLOG_LIMIT: usize = 256 << 10;

/// What one worker has handed to a writer thread and is not yet written.
#[derive(Default)]
pub(crate) struct Backlog {
    queued: AtomicUsize,
    /// Told each time some of this backlog is written.
    drained: Notify,
}

impl Backlog {
    /// Bytes the worker may still queue.
    pub fn room(&self) -> usize {
        BACKLOG_LIMIT.saturating_sub(self.queued.load(Ordering::Acquire))
    }

    /// Waits until the worker may queue at least `needed` bytes.
    ///
    /// Cancel safe: dropping the future loses nothing.
    pub async fn wait_for_room(&self, needed: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.room() >= needed {
                return;
            }
            drained.await;
        }
    }
}

enum Message {
    Write {
        bytes: Vec<u8>,
        owner: Arc<Backlog>,
    },
    /// Answered once everything sent before it is written.
    Drain(SyncSender<()>),
}

/// The writer thread of one host stream.
pub(crate) struct Writer {
    sender: Sender<Message>,
    /// The host stream refused a write (EPIPE: its reader is gone).
    closed: Arc<AtomicBool>,
}

static STDOUT: OnceLock<Writer> = OnceLock::new();
static STDERR: OnceLock<Writer> = OnceLock::new();

/// The writer of the host stream `kind`, started on first use.
pub(crate) fn writer(kind: StreamKind) -> &'static Writer {
    let cell = match kind {
        StreamKind::Stdout => &STDOUT,
        StreamKind::Stderr => &STDERR,
    };
    cell.get_or_init(|| {
        Writer::spawn(kind, move |bytes| match kind {
            StreamKind::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(bytes).and_then(|()| stdout.flush())
            }
            StreamKind::Stderr => std::io::stderr().lock().write_all(bytes),
        })
    })
}

impl Writer {
    /// Starts a thread that passes what workers send to `write`.
    pub(crate) fn spawn(
        kind: StreamKind,
        write: impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        std::thread::Builder::new()
            .name(format!("corral-{kind:?}").to_lowercase())
            .spawn(move || write_loop(receiver, write, &flag))
            .expect("spawning the console writer thread");
        Writer { sender, closed }
    }

    /// Queues `bytes`, charged to `owner` until written.
    pub(crate) fn send(&self, bytes: Vec<u8>, owner: &Arc<Backlog>) {
        if bytes.is_empty() {
            return;
        }
        owner.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        let message = Message::Write {
            bytes,
            owner: owner.clone(),
        };
        if let Err(mpsc::SendError(Message::Write { bytes, owner })) = self.sender.send(message) {
            owner.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
    }

    /// Whether the host stream has refused a write (its reader is gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Writes what workers send, coalescing what is queued into one write so a
/// chatty host makes few system calls. After a failed write the stream is
/// closed: later output is dropped (and still uncharged from its workers).
fn write_loop(
    receiver: Receiver<Message>,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    closed: &AtomicBool,
) {
    let mut out: Vec<u8> = Vec::new();
    let mut owners: Vec<(Arc<Backlog>, usize)> = Vec::new();
    let mut drains: Vec<SyncSender<()>> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Write { bytes, owner } => {
                    out.extend_from_slice(&bytes);
                    owners.push((owner, bytes.len()));
                }
                Message::Drain(done) => drains.push(done),
            }
            next = if out.len() < BACKLOG_LIMIT {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        if !out.is_empty() && !closed.load(Ordering::Relaxed) && write(&out).is_err() {
            closed.store(true, Ordering::Relaxed);
        }
        out.clear();
        for (owner, len) in owners.drain(..) {
            owner.queued.fetch_sub(len, Ordering::AcqRel);
            owner.drained.notify_waiters();
        }
        for done in drains.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Blocks until all worker output queued so far is written to the host's
/// stdout and stderr, or `timeout` passes (so that a reader that never reads
/// cannot keep an interrupted host from exiting). Returns whether
/// everything was written.
///
/// Call it before the process exits: output is written by background
/// threads, and what they still hold at exit is lost.
pub fn flush_console(timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    let waits: Vec<Receiver<()>> = [&STDOUT, &STDERR]
        .into_iter()
        .filter_map(|cell| {
            let writer = cell.get()?;
            let (done, wait) = mpsc::sync_channel(1);
            writer.sender.send(Message::Drain(done)).ok()?;
            Some(wait)
        })
        .collect();
    waits.into_iter().all(|wait| match deadline {
        Some(deadline) => wait
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok(),
        None => wait.recv().is_ok(),
    })
}
