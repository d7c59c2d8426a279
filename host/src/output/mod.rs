//! Worker stdout and stderr: streamed live to the host's terminal line by
//! line with a `[name]` prefix, passed through byte for byte, captured for
//! the embedder, or discarded.
//!
//! Console output goes through the writer threads of [`console`], never
//! written on a runtime thread, so a reader that stalls holds up only the
//! workers whose output it is not reading.

mod console;

pub use console::flush_console;

use std::future::Future;
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
    /// To the host's stdout/stderr byte for byte, no prefix: one worker run
    /// as a program (`corral run tool.wasm < in > out`).
    Inherit,
    /// Both streams to the host's stderr, prefixed: for when the host's
    /// stdout carries results (`corral pool`).
    ConsoleStderr,
    /// Into memory, read back with [`Worker::stdout`](crate::Worker::stdout).
    Capture,
    /// Nowhere.
    Null,
}

/// What ends a worker that writes to a host stream whose reader is gone
/// (`corral run tool.wasm | head -n 1`): the guest's write traps with it,
/// as the default SIGPIPE action ends a native program at that write. A
/// write that failed instead would make many guests report the error, panic
/// or go on computing output nobody reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokenPipe {
    /// The stream written to.
    pub stream: StreamKind,
}

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "broken pipe: nothing reads its {}", self.stream.name())
    }
}

impl std::error::Error for BrokenPipe {}

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

impl StreamKind {
    /// The stream's usual name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

enum Sink {
    /// Lines prefixed with `prefix`, sent to the console writer.
    Console {
        style: ConsoleStyle,
        prefix: String,
        writer: &'static console::Writer,
        backlog: Arc<console::Backlog>,
    },
    /// Bytes as written, sent to the console writer.
    Inherit {
        writer: &'static console::Writer,
        backlog: Arc<console::Backlog>,
    },
    Capture(Vec<u8>),
    Null,
}

/// Longest worker name shown in a prefix, in characters: a prefix is written
/// once per line, and a guest names its own children.
const MAX_PREFIX_NAME: usize = 64;

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
                let name = printable_name(name);
                let prefix = if style.color {
                    let color = PREFIX_COLORS[(id as usize) % PREFIX_COLORS.len()];
                    format!("\x1b[38;5;{color}m[{name}]\x1b[0m ")
                } else {
                    format!("[{name}] ")
                };
                Sink::Console {
                    style,
                    prefix,
                    writer: console::writer(kind),
                    backlog: Arc::default(),
                }
            }
            Stdio::Inherit => Sink::Inherit {
                writer: console::writer(kind),
                backlog: Arc::default(),
            },
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
            Sink::Inherit { writer, backlog } => {
                writer.send(bytes.to_vec(), backlog);
                if let Some(notice) = notice {
                    let line = format!("{notice}\n").into_bytes();
                    console::writer(StreamKind::Stderr).send(line, backlog);
                }
            }
            Sink::Console {
                style,
                prefix,
                writer,
                backlog,
            } => {
                state.partial.extend_from_slice(bytes);
                let mut start = 0;
                let mut out = Vec::new();
                while let Some(nl) = state.partial[start..].iter().position(|&b| b == b'\n') {
                    let end = start + nl;
                    push_line(&mut out, prefix, style, &state.partial[start..end]);
                    start = end + 1;
                }
                while state.partial.len() - start >= MAX_LINE {
                    push_line(
                        &mut out,
                        prefix,
                        style,
                        &state.partial[start..start + MAX_LINE],
                    );
                    start += MAX_LINE;
                }
                state.partial.drain(..start);
                if let Some(notice) = notice {
                    if !state.partial.is_empty() {
                        let partial = std::mem::take(&mut state.partial);
                        push_line(&mut out, prefix, style, &partial);
                    }
                    push_line(&mut out, prefix, style, notice.as_bytes());
                }
                writer.send(out, backlog);
            }
        }
    }

    /// Emits a last line that the worker did not end with a newline.
    pub(crate) fn finish(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        if let Sink::Console {
            style,
            prefix,
            writer,
            backlog,
        } = &state.sink
            && !state.partial.is_empty()
        {
            let mut out = Vec::new();
            push_line(&mut out, prefix, style, &state.partial);
            writer.send(out, backlog);
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

    /// How many bytes the guest may write now: what its console backlog has
    /// room for, less what prefixes could add. Once the host stream it
    /// writes to has no reader, the write ends the worker with
    /// [`BrokenPipe`], as SIGPIPE ends a native program.
    fn room(&self) -> Result<usize, StreamError> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &state.sink {
            Sink::Null | Sink::Capture(_) => Ok(WRITE_PERMIT),
            Sink::Inherit { writer, .. } | Sink::Console { writer, .. } if writer.is_closed() => {
                Err(StreamError::Trap(wasmtime::Error::new(BrokenPipe {
                    stream: state.kind,
                })))
            }
            Sink::Inherit { backlog, .. } => Ok(backlog.room().min(WRITE_PERMIT)),
            // Each byte can end a line, and each line costs a prefix and a
            // newline: what is queued stays under the backlog's limit.
            Sink::Console {
                prefix, backlog, ..
            } => Ok((backlog.room() / (prefix.len() + 2)).min(WRITE_PERMIT)),
        }
    }

    /// The console backlog that the guest's writes wait on, if any, and the
    /// room in it that makes [`room`](Self::room) at least 1.
    fn backlog(&self) -> Option<(Arc<console::Backlog>, usize)> {
        match &self.0.lock().unwrap_or_else(|e| e.into_inner()).sink {
            Sink::Console {
                prefix, backlog, ..
            } => Some((backlog.clone(), prefix.len() + 2)),
            Sink::Inherit { backlog, .. } => Some((backlog.clone(), 1)),
            Sink::Null | Sink::Capture(_) => None,
        }
    }

    /// Waits until [`room`](Self::room) is not zero. Cancel safe.
    async fn ready_to_write(&self) {
        if let Some((backlog, needed)) = self.backlog() {
            backlog.wait_for_room(needed).await;
        }
    }

    fn is_terminal_output(&self) -> bool {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &state.sink {
            // A guest that thinks it writes to a terminal may emit its own
            // color codes; say yes only when the host itself colors output.
            Sink::Console { style, .. } => style.color,
            Sink::Inherit { .. } => match state.kind {
                StreamKind::Stdout => std::io::stdout().is_terminal(),
                StreamKind::Stderr => std::io::stderr().is_terminal(),
            },
            Sink::Null | Sink::Capture(_) => false,
        }
    }
}

/// `name` as shown in a prefix: control characters escaped (a guest names
/// its children, and an escape sequence in a name could rewrite the
/// terminal), and at most [`MAX_PREFIX_NAME`] characters.
fn printable_name(name: &str) -> String {
    let mut shown = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == MAX_PREFIX_NAME {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Appends one prefixed line. Control characters in it are shown escaped, so
/// a worker cannot move the cursor, clear the screen or overwrite another
/// worker's lines; with color on, its color codes (SGR sequences) pass, and
/// the line ends by resetting them so they do not color the next prefix.
fn push_line(out: &mut Vec<u8>, prefix: &str, style: &ConsoleStyle, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    out.extend_from_slice(prefix.as_bytes());
    let mut colored = false;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == 0x1b && style.color {
            let sgr = sgr_len(&line[i..]);
            if sgr > 0 {
                out.extend_from_slice(&line[i..i + sgr]);
                colored = true;
                i += sgr;
                continue;
            }
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
        i += 1;
    }
    if colored {
        out.extend_from_slice(b"\x1b[0m");
    }
    out.push(b'\n');
}

/// The length of the SGR sequence (`ESC [ digits and ; m`) that `bytes`
/// starts with, or 0.
fn sgr_len(bytes: &[u8]) -> usize {
    let Some(rest) = bytes.strip_prefix(b"\x1b[") else {
        return 0;
    };
    let params = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';')
        .count();
    match rest.get(params) {
        Some(b'm') => 2 + params + 1,
        _ => 0,
    }
}

/// Room offered to the guest per write at most: bounds the size of a single
/// copy.
const WRITE_PERMIT: usize = 64 << 10;

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
        self.room()
    }
}

#[async_trait::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {
        self.ready_to_write().await
    }
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        self.is_terminal_output()
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncOutput {
            pipe: self.clone(),
            waiting: None,
        })
    }
}

/// An [`OutputPipe`] as a Tokio writer, for WASI interfaces that want one.
struct AsyncOutput {
    pipe: OutputPipe,
    /// The wait for backlog room that the last `poll_write` left pending.
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl tokio::io::AsyncWrite for AsyncOutput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            if let Some(waiting) = &mut self.waiting {
                std::task::ready!(waiting.as_mut().poll(cx));
                self.waiting = None;
            }
            match self.pipe.room() {
                Err(_) => return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
                Ok(0) => {
                    let pipe = self.pipe.clone();
                    self.waiting = Some(Box::pin(async move { pipe.ready_to_write().await }));
                }
                Ok(room) => {
                    let len = room.min(buf.len());
                    self.pipe.write_bytes(&buf[..len]);
                    return Poll::Ready(Ok(len));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::console::{BACKLOG_LIMIT, Writer};
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A pipe in `stdio` mode whose host stream is `write`.
    fn pipe_to(
        stdio: Stdio,
        color: bool,
        write: impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
    ) -> OutputPipe {
        let writer: &'static Writer = Box::leak(Box::new(Writer::spawn(StreamKind::Stdout, write)));
        let style = ConsoleStyle { color };
        let backlog = Arc::default();
        let sink = match stdio {
            Stdio::Inherit => Sink::Inherit { writer, backlog },
            _ => Sink::Console {
                style,
                prefix: "[w] ".into(),
                writer,
                backlog,
            },
        };
        OutputPipe(Arc::new(Mutex::new(PipeState {
            kind: StreamKind::Stdout,
            sink,
            partial: Vec::new(),
            cap: None,
        })))
    }

    /// Everything a test's writer thread has passed on.
    type Seen = Arc<Mutex<Vec<u8>>>;

    /// What a writer thread passes on, collected.
    fn collector() -> (
        impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
        Seen,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let write = move |bytes: &[u8]| {
            sink.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        };
        (write, seen)
    }

    fn wait_for(seen: &Mutex<Vec<u8>>, len: usize) -> Vec<u8> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = seen.lock().unwrap().clone();
            if now.len() >= len || std::time::Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn control_characters_are_escaped_and_colors_pass_only_in_color() {
        let mut out = Vec::new();
        let line = b"a\x1b[2Jb\x1b[31mred\rc\td";
        push_line(&mut out, "[w] ", &ConsoleStyle { color: false }, line);
        assert_eq!(out, b"[w] a\\x1b[2Jb\\x1b[31mred\\x0dc\td\n");
        out.clear();
        push_line(&mut out, "[w] ", &ConsoleStyle { color: true }, line);
        assert_eq!(out, b"[w] a\\x1b[2Jb\x1b[31mred\\x0dc\td\x1b[0m\n");
    }

    #[test]
    fn names_in_prefixes_are_printable_and_short() {
        assert_eq!(printable_name("w-1"), "w-1");
        assert_eq!(printable_name("a\x1b[2J\n"), "a\\u{1b}[2J\\n");
        let long = "x".repeat(1000);
        assert_eq!(printable_name(&long).chars().count(), MAX_PREFIX_NAME + 1);
    }

    #[test]
    fn inherited_output_passes_byte_for_byte() {
        let (write, seen) = collector();
        let mut pipe = pipe_to(Stdio::Inherit, false, write);
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for chunk in bytes.chunks(1000) {
            assert!(pipe.check_write().unwrap() >= chunk.len());
            pipe.write(Bytes::copy_from_slice(chunk)).unwrap();
        }
        assert_eq!(wait_for(&seen, bytes.len()), bytes);
    }

    #[tokio::test]
    async fn a_stalled_reader_makes_the_worker_wait_and_loses_nothing() {
        let (release, stalled) = mpsc::channel::<()>();
        let (write, seen) = collector();
        let mut write = write;
        let mut first = true;
        let mut pipe = pipe_to(Stdio::Console, false, move |bytes: &[u8]| {
            if std::mem::take(&mut first) {
                // The reader stalls until the test lets it go on.
                let _ = stalled.recv();
            }
            write(bytes)
        });
        let line = b"0123456789abcdef\n";
        let mut written = 0;
        loop {
            let permit = pipe.check_write().unwrap();
            if permit == 0 {
                break;
            }
            let at = written % line.len();
            let len = permit.min(line.len() - at);
            pipe.write(Bytes::copy_from_slice(&line[at..at + len]))
                .unwrap();
            written += len;
            assert!(written < 100 << 20, "no backpressure");
        }
        let lines = written / line.len();
        let queued = lines * (line.len() + 4);
        assert!(queued <= BACKLOG_LIMIT, "{queued} bytes queued");
        // A waiting worker holds no thread: its wait is a pending future.
        let ready = tokio::time::timeout(Duration::from_millis(100), pipe.ready()).await;
        assert!(ready.is_err(), "ready while the reader is stalled");
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), pipe.ready())
            .await
            .expect("ready once the reader reads");
        let out = wait_for(&seen, queued);
        let expected: Vec<u8> = b"[w] 0123456789abcdef\n".repeat(lines);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_closed_host_stream_ends_the_writer_like_sigpipe() {
        for stdio in [Stdio::Inherit, Stdio::Console] {
            let mut pipe = pipe_to(stdio, false, |_: &[u8]| {
                Err(std::io::ErrorKind::BrokenPipe.into())
            });
            pipe.write(Bytes::from_static(b"x\n")).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while pipe.check_write().is_ok() {
                assert!(std::time::Instant::now() < deadline, "never closed");
                std::thread::sleep(Duration::from_millis(5));
            }
            match pipe.check_write() {
                Err(StreamError::Trap(e)) => assert!(e.downcast_ref::<BrokenPipe>().is_some()),
                other => panic!("{stdio:?}: {other:?}"),
            }
        }
    }
}
