//! Queue-fed pools: a [`Pool`] that takes its inputs from one named queue and
//! puts its results on another, so a pool task is a stage of a pipeline of
//! workers (`[[pool]]` in a manifest).
//!
//! The input ends, by the same conventions the guests use, at the first of:
//! an empty message (the stop sentinel), the queue being closed and drained,
//! or the `producers_done` future resolving (whoever could put on the queue
//! has ended) and the queue being empty. Then, once every result is out, the
//! feed puts `stops` empty messages on the output, one per downstream
//! consumer, so the next stage stops the same way.

use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};

use crate::ipc::{Queue, QueueHandle};
use crate::pool::{Pool, TaskError};

/// How a feed moves messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOptions {
    /// Inputs per pool job: more amortises the host/guest crossing.
    pub chunk: usize,
    /// Empty messages put on the output when the input ends.
    pub stops: u32,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions { chunk: 1, stops: 1 }
    }
}

/// Why a feed stopped taking input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// An empty message arrived on the input.
    Stop,
    /// The input queue was closed, and everything in it was processed.
    Closed,
    /// Every producer had ended and the input queue was empty.
    ProducersEnded,
    /// The host is shutting down: the feed took no more input, finished
    /// what it had taken and put its results.
    Shutdown,
    /// The output queue was closed: nobody takes results any more. The
    /// results not yet put were dropped.
    OutputClosed,
}

impl std::fmt::Display for FeedEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FeedEnd::Stop => "stop message",
            FeedEnd::Closed => "input closed",
            FeedEnd::ProducersEnded => "producers ended",
            FeedEnd::Shutdown => "shutdown",
            FeedEnd::OutputClosed => "output closed",
        })
    }
}

/// What a feed did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedReport {
    /// Results put on the output.
    pub succeeded: u64,
    /// Tasks that failed (reported through the feed's callback, not put).
    pub failed: u64,
    /// Why it stopped.
    pub end: FeedEnd,
}

/// Runs `pool` over every message of `input` in order, putting each result
/// on `output`, until the input ends (see the module docs). A failed task
/// puts nothing; `on_failure` hears of it with its input's index (from 0).
///
/// Each input message is marked done on its queue once its result is out,
/// so `join` on the input waits for the pool, and an acknowledged input
/// queue gets back what a cancelled feed had taken. When `shutdown`
/// resolves, the feed takes no more input: the tasks in flight finish,
/// their results are put, and the rest stays in the queue (end
/// [`FeedEnd::Shutdown`]).
pub async fn feed_pool(
    pool: &Pool,
    input: &Arc<Queue>,
    output: &Arc<Queue>,
    producers_done: impl Future<Output = ()> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: FeedOptions,
    mut on_failure: impl FnMut(u64, &TaskError),
) -> FeedReport {
    let taken = Arc::new(input.handle());
    let end = Arc::new(Mutex::new(None));
    let inputs = input_stream(taken.clone(), end.clone(), (producers_done, shutdown));
    let mut results = std::pin::pin!(pool.imap_stream(inputs, options.chunk));
    let out = output.handle();
    let (mut succeeded, mut failed, mut index) = (0, 0, 0);
    let mut output_closed = false;
    while let Some(result) = results.next().await {
        match result {
            Ok(bytes) => match out.put(bytes, None).await {
                Ok(()) => succeeded += 1,
                Err(_) => {
                    output_closed = true;
                    break;
                }
            },
            Err(e) => {
                failed += 1;
                on_failure(index, &e);
            }
        }
        index += 1;
        // In input order, as imap yields: the oldest message taken is the
        // one this result answers.
        let _ = taken.task_done();
    }
    let end = if output_closed {
        FeedEnd::OutputClosed
    } else {
        for _ in 0..options.stops {
            if out.put(Vec::new(), None).await.is_err() {
                break;
            }
        }
        end.lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(FeedEnd::Closed)
    };
    // The stop message, if that is how the input ended.
    if end == FeedEnd::Stop {
        let _ = taken.task_done();
    }
    FeedReport {
        succeeded,
        failed,
        end,
    }
}

/// The input queue's messages up to its end, which is recorded in `end`.
fn input_stream(
    taken: Arc<QueueHandle>,
    end: Arc<Mutex<Option<FeedEnd>>>,
    (producers_done, shutdown): (
        impl Future<Output = ()> + Send + 'static,
        impl Future<Output = ()> + Send + 'static,
    ),
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    struct State<F, S> {
        taken: Arc<QueueHandle>,
        end: Arc<Mutex<Option<FeedEnd>>>,
        producers_done: Option<std::pin::Pin<Box<F>>>,
        shutdown: std::pin::Pin<Box<S>>,
    }
    let state = State {
        taken,
        end,
        producers_done: Some(Box::pin(producers_done)),
        shutdown: Box::pin(shutdown),
    };
    futures::stream::unfold(state, |mut s| async move {
        /// What the next step of the stream met.
        enum Next<T> {
            Got(T),
            Shutdown,
        }
        // A shutdown first: once asked to stop, take nothing more, even
        // what is already there (it stays in the queue).
        let next = match s.producers_done.as_mut() {
            Some(done) => tokio::select! {
                biased;
                () = s.shutdown.as_mut() => Next::Shutdown,
                got = s.taken.get(None) => Next::Got(got.map(Some)),
                () = done => {
                    s.producers_done = None;
                    Next::Got(s.taken.try_get().await)
                }
            },
            // Nobody can put any more: what is there now is all there is.
            None => tokio::select! {
                biased;
                () = s.shutdown.as_mut() => Next::Shutdown,
                got = s.taken.try_get() => Next::Got(got),
            },
        };
        let ended = match next {
            Next::Shutdown => FeedEnd::Shutdown,
            Next::Got(Ok(Some(message))) if !message.is_empty() => {
                return Some((message.to_vec(), s));
            }
            Next::Got(Ok(Some(_))) => FeedEnd::Stop,
            Next::Got(Ok(None)) => FeedEnd::ProducersEnded,
            // `closed` is the only error a host `get` without a timeout can
            // meet: the queue was closed and is now drained.
            Next::Got(Err(_)) => FeedEnd::Closed,
        };
        *s.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ended);
        None
    })
}
