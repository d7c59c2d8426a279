//! Worker stdout and stderr: streamed live to the host's terminal line by
//! line with a `[name]` prefix, captured for the embedder, or discarded.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Where a worker's stdout and stderr go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stdio {
    /// To the host's stdout/stderr, each line prefixed with `[name]`.
    #[default]
    Console,
    /// Both streams to the host's stderr, prefixed: for when the host's
    /// stdout carries results (`corral pool`).
    ConsoleStderr,
    /// Into memory, read back with [`Worker::stdout`](crate::Worker::stdout).
    Capture,
    /// Nowhere.
    Null,
}

/// How console output is decorated. Shared by all workers of a runtime.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleStyle {
    /// Color the `[name]` prefix (one color per worker). Use on a terminal.
    pub color: bool,
}

/// Lines longer than this are emitted in pieces, so a guest that never
/// writes a newline cannot make the host buffer without bound.
const MAX_LINE: usize = 64 << 10;

/// Which of the two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Stdout,
    Stderr,
}

enum Sink {
    Console { style: ConsoleStyle, prefix: String },
    Capture(Vec<u8>),
    Null,
}

struct PipeState {
    kind: StreamKind,
    sink: Sink,
    /// A console line not yet ended by a newline.
    partial: Vec<u8>,
    /// A cap on the bytes passed on, if the worker's policy sets one.
    cap: Option<Cap>,
}

/// An output cap: bytes past `limit` are dropped, once with a notice.
struct Cap {
    limit: u64,
    written: u64,
    /// Called once, when the first byte is dropped.
    on_exceeded: Option<Box<dyn FnOnce(u64) + Send>>,
}

/// One worker output stream. Clones share the stream: WASI may open several
/// handles to stdout and they must all write to the same place.
#[derive(Clone)]
pub(crate) struct OutputPipe(Arc<Mutex<PipeState>>);

/// 256-color palette entries that read well on dark and light backgrounds.
const PREFIX_COLORS: [u8; 8] = [33, 35, 36, 32, 166, 134, 37, 172];

impl OutputPipe {
    pub(crate) fn new(
        kind: StreamKind,
        stdio: Stdio,
        style: ConsoleStyle,
        worker: (u64, &str),
    ) -> Self {
        let kind = match stdio {
            Stdio::ConsoleStderr => StreamKind::Stderr,
            _ => kind,
        };
        let sink = match stdio {
            Stdio::Console | Stdio::ConsoleStderr => {
                let (id, name) = worker;
                let prefix = if style.color {
                    let color = PREFIX_COLORS[(id as usize) % PREFIX_COLORS.len()];
                    format!("\x1b[38;5;{color}m[{name}]\x1b[0m ")
                } else {
                    format!("[{name}] ")
                };
                Sink::Console { style, prefix }
            }
            Stdio::Capture => Sink::Capture(Vec::new()),
            Stdio::Null => Sink::Null,
        };
        OutputPipe(Arc::new(Mutex::new(PipeState {
            kind,
            sink,
            partial: Vec::new(),
            cap: None,
        })))
    }

    /// Passes on at most `limit` bytes; past it the guest's writes still
    /// succeed (so it goes on running) but are dropped, and `on_exceeded`
    /// runs once with the limit. On the console a notice line says so.
    pub(crate) fn with_limit(
        self,
        limit: Option<u64>,
        on_exceeded: impl FnOnce(u64) + Send + 'static,
    ) -> Self {
        if let Some(limit) = limit {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).cap = Some(Cap {
                limit,
                written: 0,
                on_exceeded: Some(Box::new(on_exceeded)),
            });
        }
        self
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        let mut notice = None;
        let bytes = match &mut state.cap {
            None => bytes,
            Some(cap) => {
                let room = cap
                    .limit
                    .saturating_sub(cap.written)
                    .min(bytes.len() as u64) as usize;
                cap.written += room as u64;
                if room < bytes.len()
                    && let Some(exceeded) = cap.on_exceeded.take()
                {
                    exceeded(cap.limit);
                    notice = Some(format!(
                        "[corral: output truncated at the policy's limit of {}; the rest is dropped]",
                        bytesize::ByteSize(cap.limit).display().iec()
                    ));
                }
                &bytes[..room]
            }
        };
        match &mut state.sink {
            Sink::Null => {}
            Sink::Capture(buf) => buf.extend_from_slice(bytes),
            Sink::Console { prefix, .. } => {
                state.partial.extend_from_slice(bytes);
                let mut start = 0;
                let mut out = Vec::new();
                while let Some(nl) = state.partial[start..].iter().position(|&b| b == b'\n') {
                    let end = start + nl;
                    push_line(&mut out, prefix, &state.partial[start..end]);
                    start = end + 1;
                }
                while state.partial.len() - start >= MAX_LINE {
                    push_line(&mut out, prefix, &state.partial[start..start + MAX_LINE]);
                    start += MAX_LINE;
                }
                state.partial.drain(..start);
                if let Some(notice) = notice {
                    if !state.partial.is_empty() {
                        push_line(&mut out, prefix, &std::mem::take(&mut state.partial));
                    }
                    push_line(&mut out, prefix, notice.as_bytes());
                }
                if !out.is_empty() {
                    emit(state.kind, &out);
                }
            }
        }
    }

    /// Emits a last line that the worker did not end with a newline.
    pub(crate) fn finish(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Console { prefix, .. } = &state.sink
            && !state.partial.is_empty()
        {
            let mut out = Vec::new();
            push_line(&mut out, prefix, &state.partial);
            emit(state.kind, &out);
            state.partial.clear();
        }
    }

    /// Everything captured so far (empty unless the stream is [`Stdio::Capture`]).
    pub(crate) fn captured(&self) -> Vec<u8> {
        match &self.0.lock().unwrap_or_else(|e| e.into_inner()).sink {
            Sink::Capture(buf) => buf.clone(),
            _ => Vec::new(),
        }
    }

    fn is_color_console(&self) -> bool {
        matches!(
            self.0.lock().unwrap_or_else(|e| e.into_inner()).sink,
            Sink::Console {
                style: ConsoleStyle { color: true },
                ..
            }
        )
    }
}

fn push_line(out: &mut Vec<u8>, prefix: &str, line: &[u8]) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    out.push(b'\n');
}

/// Writes whole lines to the host stream in one call so lines of different
/// workers never interleave. A closed host stream (EPIPE) is not the worker's
/// problem: its output is dropped.
fn emit(kind: StreamKind, lines: &[u8]) {
    let _ = match kind {
        StreamKind::Stdout => std::io::stdout().lock().write_all(lines),
        StreamKind::Stderr => std::io::stderr().lock().write_all(lines),
    };
}

/// Room offered to the guest per write. The pipe never blocks, so any size
/// works; this bounds the size of a single copy.
const WRITE_PERMIT: usize = 1 << 20;

#[async_trait::async_trait]
impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {}
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        // A guest that thinks it writes to a terminal may emit its own color
        // codes; say yes only when the host itself colors output.
        self.is_color_console()
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for OutputPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
