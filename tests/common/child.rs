//! Child processes (the `corral` binary, servers) whose every wait has a
//! deadline: past it the child is killed and the test fails with what the
//! child printed so far, so a hung child never holds CI. A child still
//! running when its handle is dropped (a failed test) is killed too.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A spawned child, its stdout read line by line and its stderr collected
/// on threads of their own (so neither pipe fills and blocks it).
pub struct Bounded {
    child: Child,
    what: String,
    deadline: Instant,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    ended: Option<ExitStatus>,
    /// The child's stdin, when it is kept open (closed when this drops).
    input: Option<ChildStdin>,
}

impl Bounded {
    /// Spawns `command` (stdout and stderr piped, `stdin` written to it then
    /// closed); every later wait ends by `limit` from now.
    pub fn spawn(command: &mut Command, stdin: &[u8], limit: Duration) -> Bounded {
        let mut bounded = Bounded::spawn_stdin_open(command, limit);
        let mut input = bounded.input.take().unwrap();
        let stdin = stdin.to_vec();
        // The child may exit without reading it all: a broken pipe is fine.
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        bounded
    }

    /// Spawns `command` as [`spawn`](Self::spawn) does, its stdin left open
    /// for [`write_stdin`](Self::write_stdin), as a terminal or a slow
    /// producer would leave it.
    pub fn spawn_stdin_open(command: &mut Command, limit: Duration) -> Bounded {
        let what = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let input = child.stdin.take();
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if send.send(line).is_err() => break,
                    Ok(_) => {}
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        Bounded {
            child,
            what,
            deadline: Instant::now() + limit,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
            ended: None,
            input,
        }
    }

    /// Writes `bytes` to the child's open stdin (see
    /// [`spawn_stdin_open`](Self::spawn_stdin_open)); small writes only,
    /// which the pipe's buffer takes without blocking.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let input = self.input.as_mut().expect("stdin is open");
        input.write_all(bytes).unwrap();
        input.flush().unwrap();
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line of stdout that `wanted` accepts and returns it
    /// (every line read is kept for [`finish`](Self::finish)).
    pub fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.fail("printed no such line"),
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail("closed its stdout before printing such a line")
                }
            }
        }
    }

    /// Moves the deadline of the waits to come to `limit` from now.
    pub fn set_deadline(&mut self, limit: Duration) {
        self.deadline = Instant::now() + limit;
    }

    /// Kills the child (SIGKILL) and waits until it is gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.ended = Some(self.child.wait().unwrap());
    }

    /// Sends `signal` to the child, which must still be running.
    pub fn signal(&mut self, signal: i32) {
        if let Some(status) = self.child.try_wait().unwrap() {
            self.ended = Some(status);
            self.fail("had ended before it could be signalled");
        }
        // SAFETY: the child is ours and not yet reaped, so its pid is
        // still its own.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the child to exit and returns its status and all it wrote.
    pub fn finish(mut self) -> Output {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > self.deadline {
                self.fail("did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.ended = Some(status);
        self.collect(status)
    }

    /// Kills the child if it is running and returns everything it wrote.
    fn collect(&mut self, status: ExitStatus) -> Output {
        // The pipes close when the child exits; the threads end with them.
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        self.stdout.extend(self.lines.try_iter());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        Output {
            status,
            stdout: self.stdout.concat().into_bytes(),
            stderr,
        }
    }

    /// Kills the child and fails the test, showing what it wrote.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.ended = Some(status);
        let output = self.collect(status);
        panic!(
            "{} {why} before its deadline ({status}); stdout:\n{}\nstderr:\n{}",
            self.what,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        if self.ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to its end with `stdin` as input, killing it and failing
/// the test if it runs past `limit`.
pub fn output_within(command: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    Bounded::spawn(command, stdin, limit).finish()
}
