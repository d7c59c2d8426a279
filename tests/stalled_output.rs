//! Issue 15's stalled-reader attack, end to end through the `corral`
//! binary: two workers in one `corral up` whose stdout is a pipe nobody
//! reads for a while. The writing worker waits (backpressure, never a
//! blocked runtime thread); a sibling that writes only to a file finishes
//! meanwhile; once the reader drains, every line arrives, complete and in
//! order.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every wait of the test ends by then, pass or fail.
const PATIENCE: Duration = Duration::from_secs(120);

/// The writer's lines: 4 MB, far past the pipe's 64 KiB and the host's
/// per-worker backlog of 256 KiB.
const LINES: usize = 40_000;
const WIDTH: usize = 100;

/// Kills the child when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stalled_stdout_holds_up_its_writer_and_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("stalled.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[worker]]\nname = \"writer\"\ncomponent = {:?}\nargs = [\"{LINES}\", \"{WIDTH}\"]\n\n\
             [[worker]]\nname = \"sibling\"\ncomponent = {:?}\n\
             args = [\"/log.txt\", \"-\", \"2000\"]\nmounts = [\"@scratch:/\"]\n",
            common::guest("numbered"),
            common::guest("appender"),
        ),
    )
    .unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(["--events", "json", "up", "--cache-dir"])
            .arg(common::shared_cache_dir())
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start corral"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (send, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let exited = |line: &str, name: &str| {
        line.contains("\"event\":\"exited\"") && line.contains(&format!("\"name\":\"{name}\""))
    };
    // Nobody reads stdout yet: the sibling must end all the same.
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = events
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("the sibling did not end ({e}): {seen:#?}"));
        assert!(
            !exited(&line, "writer"),
            "the writer ended before its output was read: {line}"
        );
        let done = exited(&line, "sibling");
        seen.push(line);
        if done {
            break;
        }
    }
    let sibling = seen.last().unwrap();
    assert!(
        sibling.contains("\"status\":{\"kind\":\"exited\",\"code\":0}"),
        "{sibling}"
    );
    // The writer is still held up by the unread pipe.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        events.try_iter().all(|line| !exited(&line, "writer")),
        "the writer ended with its output unread"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "corral ended early");

    // Now drain, with a deadline: a reader thread, its result awaited.
    let (send, read) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut all);
        let _ = send.send(all);
    });
    let all = read
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("stdout drained in time");
    let writer: Vec<&str> = all
        .lines()
        .filter_map(|line| line.strip_prefix("[writer] "))
        .collect();
    assert_eq!(writer.len(), LINES, "lines lost or added");
    for (n, line) in writer.iter().enumerate() {
        assert_eq!(line.len(), WIDTH - 1, "line {n} is torn: {line:?}");
        assert!(
            line.starts_with(&format!("{n:08} ")),
            "line {n} out of order: {line:?}"
        );
    }
    assert!(
        all.contains("[sibling] appended 2000 lines to /log.txt"),
        "the sibling's line is lost"
    );
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "corral exited {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "corral did not exit after the drain"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
