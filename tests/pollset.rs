//! `corral:worker/pollset` attacked end to end with the `hostile-pollset`
//! guest: bad arguments get clear errors (never a trap), a stream watched a
//! million times is held once, sets stop at the worker's `max-handles`,
//! and a worker waiting on a set is killed at once. The echo server's use
//! of pollsets is tested in tests/network.rs.

mod common;

use std::time::{Duration, Instant};

use common::{denials, load, profile, runtime_with, stdout_of};
use corral::{ExitStatus, KillReason, Run, Runtime, Stdio, Worker, WorkerSpec};

/// Binds and connects anywhere on 127.0.0.1.
const NETWORK: &str = "[profiles.p.network]\nbind = [\"127.0.0.1:*\"]\n\
                       connect = [\"127.0.0.1:*\"]\n";

fn spawn(rt: &Runtime, mode: &str, limits: &str) -> Worker {
    let mut spec = WorkerSpec::new(mode)
        .args([mode])
        .stdio(Stdio::Capture)
        .run(&Run::new());
    profile(&format!("[profiles.p]\n{limits}{NETWORK}")).apply_to(&mut spec);
    rt.spawn(&load(rt, "hostile-pollset"), spec)
}

async fn join(worker: &Worker) -> ExitStatus {
    tokio::time::timeout(Duration::from_secs(120), worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} did not end in time", worker.name()))
}

async fn exits_0(worker: &Worker) -> String {
    assert_eq!(
        join(worker).await,
        ExitStatus::Exited { code: 0 },
        "{}{}",
        stdout_of(worker),
        String::from_utf8_lossy(&worker.stderr())
    );
    stdout_of(worker)
}

#[tokio::test(flavor = "multi_thread")]
async fn abuse_gets_clear_errors_and_the_host_holds_one_entry_per_stream() {
    let (rt, _events) = runtime_with(4);
    let out = exits_0(&spawn(&rt, "abuse", "")).await;
    let only_tcp = "Error::Invalid(\"only a TCP connection's input stream (from accept or \
                    finish-connect) can be watched\")";
    let expected = format!(
        "max 0: Err(Error::Invalid(\"max is 0\"))\n\
         nothing to wait for: Err(Error::Invalid(\"nothing to wait for: the set is empty and so is `also`\"))\n\
         watch stdin: Err({only_tcp})\n\
         unwatch stdin: ok, len 0\n\
         a million watches: len 0 and 1\n\
         unwatched: len 0 and 0\n\
         first read: 0 bytes\n\
         idle: tokens [] also [0]\n\
         sent: tokens [7] also []\n\
         not read yet: tokens [7]\n\
         both: tokens [7] also [], then tokens [7] also [1]\n\
         read \"ping\"\n\
         read again: 0 bytes\n\
         drained: tokens [] also [0]\n\
         10000 also: 10000 ready\n\
         stream dropped: len 0\n\
         ok\n"
    );
    assert_eq!(out, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn sets_stop_at_max_handles_with_a_denial() {
    let (rt, events) = runtime_with(4);
    let out = exits_0(&spawn(&rt, "sets-forever", "max-handles = 50\n")).await;
    assert_eq!(
        out,
        "sets 50: Error::Denied(\"max-handles\")\nafter dropping one: Ok(())\n"
    );
    assert_eq!(
        denials(&events.events(), "sets-forever")
            .into_iter()
            .map(|(rule, _)| rule)
            .collect::<Vec<_>>(),
        ["max-handles"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_waiting_on_a_set_is_killed_at_once_and_its_peers_go_on() {
    let (rt, _events) = runtime_with(4);
    let waiter = spawn(&rt, "wait-forever", "");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stdout_of(&waiter).contains("waiting") {
        assert!(
            waiter.is_alive() && Instant::now() < deadline,
            "never waited: {}",
            String::from_utf8_lossy(&waiter.stderr())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Still waiting a moment later: nothing but a kill ends it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(waiter.is_alive(), "{}", stdout_of(&waiter));
    let peer = spawn(&rt, "abuse", "");
    let killed = Instant::now();
    waiter.terminate();
    assert_eq!(
        join(&waiter).await,
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "the kill took {:?}",
        killed.elapsed()
    );
    assert_eq!(stdout_of(&waiter), "waiting\n");
    assert!(exits_0(&peer).await.ends_with("ok\n"));
}

/// Hundreds of writable sockets asked in one go all say so: the worker's
/// host calls run outside tokio's cooperative budget, which after 128
/// readiness checks would make every later socket look unwritable (and,
/// with wasmtime-wasi's no-op waker, never say when that changed). The echo
/// server lost three quarters of its speed at 1,000 clients to this.
#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_writable_sockets_all_say_so_in_one_go() {
    let (rt, _events) = runtime_with(4);
    let mut spec = WorkerSpec::new("many")
        .args(["many-writable", "200"])
        .stdio(Stdio::Capture)
        .run(&Run::new());
    profile(&format!("[profiles.p]\n{NETWORK}")).apply_to(&mut spec);
    let out = exits_0(&rt.spawn(&load(&rt, "hostile-pollset"), spec)).await;
    assert_eq!(out, "200 connections, 0 said 0\n");
}
