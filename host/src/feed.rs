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
/// queue gets back what a cancelled feed had taken.
pub async fn feed_pool(
    pool: &Pool,
    input: &Arc<Queue>,
    output: &Arc<Queue>,
    producers_done: impl Future<Output = ()> + Send + 'static,
    options: FeedOptions,
    mut on_failure: impl FnMut(u64, &TaskError),
) -> FeedReport {
    let taken = Arc::new(input.handle());
    let end = Arc::new(Mutex::new(None));
    let inputs = input_stream(taken.clone(), end.clone(), producers_done);
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
    producers_done: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    struct State<F> {
        taken: Arc<QueueHandle>,
        end: Arc<Mutex<Option<FeedEnd>>>,
        producers_done: Option<std::pin::Pin<Box<F>>>,
    }
    let state = State {
        taken,
        end,
        producers_done: Some(Box::pin(producers_done)),
    };
    futures::stream::unfold(state, |mut s| async move {
        let next = match s.producers_done.as_mut() {
            Some(done) => tokio::select! {
                biased;
                got = s.taken.get(None) => got.map(Some),
                () = done => {
                    s.producers_done = None;
                    s.taken.try_get().await
                }
            },
            // Nobody can put any more: what is there now is all there is.
            None => s.taken.try_get().await,
        };
        let ended = match next {
            Ok(Some(message)) if !message.is_empty() => return Some((message.to_vec(), s)),
            Ok(Some(_)) => FeedEnd::Stop,
            Ok(None) => FeedEnd::ProducersEnded,
            // `closed` is the only error a host `get` without a timeout can
            // meet: the queue was closed and is now drained.
            Err(_) => FeedEnd::Closed,
        };
        *s.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ended);
        None
    })
}
