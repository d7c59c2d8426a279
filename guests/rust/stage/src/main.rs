//! A stage of a supervised pipeline (issue 17). Delivery over an
//! acknowledged queue is at least once; each item carries its sequence
//! number, so the sink's output is exactly once however often a stage is
//! restarted in the middle of an item.
//!
//! - `stage source OUT N [EACH]`: puts `0` .. `N-1` (or N times EACH),
//!   then `end`, on OUT. It keeps its count in `/state/produced`, so a
//!   restart goes on where the last start got to instead of producing
//!   again.
//! - `stage square IN OUT [FAIL_AT]`: takes `i`, puts `i:i*i`, marks `i`
//!   done. On its first start (`CORRAL_RESTARTS` 0) it traps on taking
//!   FAIL_AT, holding it. Forwards `end` and exits 0.
//! - `stage sink IN`: writes each `i:v` to `/out/i`; at `end` prints how
//!   many items `/out` holds and their sum, and exits 0.
//! - `stage echo IN`: prints `got M` for each message M as it takes it,
//!   until `end`.
//! - `stage pipe-echo PIPE [FAIL_AT]`: answers each `i` on the pipe with
//!   `echo i`, until `end`. On its first start it traps on taking FAIL_AT,
//!   before answering: that message dies with it.
//! - `stage pipe-client PIPE N`: sends `0` .. `N-1`, each until its echo
//!   comes back (sent again after 1 s without one), then `end`; prints how
//!   many were echoed and how many sent again.

use corral_guest::{Endpoint, Error, Queue, arg, ms, or_die};

fn main() {
    let role: String = arg(1, String::new());
    match role.as_str() {
        "source" => source(
            &arg::<String>(2, "a".into()),
            arg(3, 10),
            &arg::<String>(4, String::new()),
        ),
        "square" => square(
            &arg::<String>(2, "a".into()),
            &arg::<String>(3, "b".into()),
            arg(4, u64::MAX),
        ),
        "sink" => sink(&arg::<String>(2, "b".into())),
        "echo" => echo(&arg::<String>(2, "b".into())),
        "pipe-echo" => pipe_echo(&arg::<String>(2, "p".into()), arg(3, u64::MAX)),
        "pipe-client" => pipe_client(&arg::<String>(2, "p".into()), arg(3, 10)),
        _ => {
            eprintln!(
                "usage: stage source OUT N [EACH] | square IN OUT [FAIL_AT] | sink IN | echo IN \
                 | pipe-echo PIPE [FAIL_AT] | pipe-client PIPE N"
            );
            std::process::exit(2);
        }
    }
}

fn source(out: &str, n: u64, each: &str) {
    let out = or_die("open output", Queue::open(out));
    std::fs::create_dir_all("/state").expect("create /state");
    let produced: u64 = std::fs::read_to_string("/state/produced")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for i in produced..n {
        let item = if each.is_empty() {
            i.to_string()
        } else {
            each.to_string()
        };
        or_die("put", out.put(item.as_bytes(), None));
        std::fs::write("/state/produced", (i + 1).to_string()).expect("record progress");
    }
    or_die("put end", out.put(b"end", None));
    println!("source: produced {n} (this start from {produced})");
}

fn square(input: &str, output: &str, fail_at: u64) {
    let (input, output) = (
        or_die("open input", Queue::open(input)),
        or_die("open output", Queue::open(output)),
    );
    let first_start = std::env::var("CORRAL_RESTARTS").as_deref() == Ok("0");
    loop {
        let message = or_die("get", input.get(None));
        let text = String::from_utf8_lossy(&message).into_owned();
        if text == "end" {
            or_die("put end", output.put(b"end", None));
            or_die("task-done", input.task_done());
            return;
        }
        let i: u64 = text.parse().expect("a sequence number");
        if i == fail_at && first_start {
            println!("square: failing on {i}");
            std::process::abort();
        }
        or_die("put", output.put(format!("{i}:{}", i * i).as_bytes(), None));
        or_die("task-done", input.task_done());
    }
}

fn sink(input: &str) {
    let input = or_die("open input", Queue::open(input));
    std::fs::create_dir_all("/out").expect("create /out");
    loop {
        let message = or_die("get", input.get(None));
        let text = String::from_utf8_lossy(&message).into_owned();
        if text == "end" {
            or_die("task-done", input.task_done());
            break;
        }
        let (i, value) = text.split_once(':').expect("i:v");
        std::fs::write(format!("/out/{i}"), value).expect("write the item");
        or_die("task-done", input.task_done());
    }
    let (mut count, mut sum) = (0u64, 0u64);
    for entry in std::fs::read_dir("/out").expect("list /out") {
        let path = entry.expect("an entry").path();
        let value: u64 = std::fs::read_to_string(&path)
            .expect("read an item")
            .parse()
            .expect("a number");
        count += 1;
        sum += value;
    }
    println!("sink: {count} items, sum {sum}");
}

fn echo(input: &str) {
    let input = or_die("open input", Queue::open(input));
    loop {
        let message = or_die("get", input.get(None));
        or_die("task-done", input.task_done());
        let text = String::from_utf8_lossy(&message).into_owned();
        if text == "end" || text.is_empty() {
            return;
        }
        println!("got {text}");
    }
}

fn pipe_echo(pipe: &str, fail_at: u64) {
    let end = or_die("open pipe", Endpoint::open(pipe));
    let first_start = std::env::var("CORRAL_RESTARTS").as_deref() == Ok("0");
    loop {
        let message = or_die("recv", end.recv(None));
        let text = String::from_utf8_lossy(&message).into_owned();
        if text == "end" {
            return;
        }
        if text.parse() == Ok(fail_at) && first_start {
            println!("pipe-echo: failing on {text}");
            std::process::abort();
        }
        or_die("send", end.send(format!("echo {text}").as_bytes(), None));
    }
}

fn pipe_client(pipe: &str, n: u64) {
    let end = or_die("open pipe", Endpoint::open(pipe));
    let mut sent_again = 0;
    for i in 0..n {
        let (message, echo) = (i.to_string(), format!("echo {i}"));
        or_die("send", end.send(message.as_bytes(), None));
        loop {
            match end.recv(ms(1000)) {
                Ok(reply) if reply == echo.as_bytes() => break,
                // The echo of an earlier send of a message sent again.
                Ok(_) => {}
                Err(Error::Timeout) => {
                    sent_again += 1;
                    or_die("send", end.send(message.as_bytes(), None));
                }
                Err(e) => or_die("recv", Err(e)),
            }
        }
    }
    or_die("send", end.send(b"end", None));
    println!("pipe-client: {n} echoed, {sent_again} sent again");
}
