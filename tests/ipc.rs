//! Queues, pipes, locks and sync objects between real guest workers, with
//! the faults the issue names: killed producers, consumers, lock holders and
//! pipe peers; misuse from guests; timeouts.

mod common;

use std::time::{Duration, Instant};

use common::{load, runtime_with, stdout_of};
use corral::ipc::{IpcError, PipeConfig, QueueConfig};
use corral::{ExitStatus, Program, Run, Runtime, Stdio, Worker, WorkerSpec};

fn spawn(rt: &Runtime, run: &Run, program: &Program, name: &str, args: &[&str]) -> Worker {
    rt.spawn(
        program,
        WorkerSpec::new(name)
            .args(args.iter().copied())
            .stdio(Stdio::Capture)
            .run(run),
    )
}

async fn wait_for_output(worker: &Worker, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stdout_of(worker).contains(text) {
        assert!(
            Instant::now() < deadline,
            "never printed {text:?}: {}",
            stdout_of(worker)
        );
        assert!(
            worker.is_alive(),
            "ended early: {:?} {}",
            worker.try_status(),
            stdout_of(worker)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn expect_ok(worker: &Worker) -> String {
    let status = worker.join().await;
    let out = stdout_of(worker);
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}: {out}{}",
        worker.name(),
        String::from_utf8_lossy(&worker.stderr())
    );
    out
}

fn queue_config(capacity: usize) -> QueueConfig {
    QueueConfig {
        capacity,
        ..QueueConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_producers_four_consumers_exact_and_ordered() {
    const PER_PRODUCER: &str = "100000";
    let (rt, _) = runtime_with(64);
    let run = Run::new();
    run.objects()
        .declare_queue("jobs", queue_config(1000))
        .unwrap();
    run.objects()
        .declare_queue("results", queue_config(16))
        .unwrap();
    let producer = load(&rt, "producer");
    let consumer = load(&rt, "consumer");
    let tally = load(&rt, "tally");
    // Two producers put one by one, two in batches of 64; two consumers get
    // one by one, two in batches of 32. Each producer adds one stop message.
    let mut workers = Vec::new();
    for (i, batch) in ["1", "1", "64", "64"].iter().enumerate() {
        workers.push(spawn(
            &rt,
            &run,
            &producer,
            &format!("p{i}"),
            &["jobs", PER_PRODUCER, "1", batch],
        ));
    }
    for (i, batch) in ["1", "1", "32", "32"].iter().enumerate() {
        workers.push(spawn(
            &rt,
            &run,
            &consumer,
            &format!("c{i}"),
            &["jobs", batch],
        ));
    }
    let checker = spawn(&rt, &run, &tally, "tally", &["4", "4"]);
    let mut consumed = 0u64;
    for w in &workers {
        let out = expect_ok(w).await;
        if let Some(rest) = out.strip_prefix("consumed ") {
            consumed += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            assert!(out.contains(", 0 out of order"), "{out}");
        }
    }
    assert_eq!(consumed, 400_000);
    let verdict = expect_ok(&checker).await;
    assert!(
        verdict.starts_with("OK: 4 producers put 400000, 4 consumers got 400000; checksums match"),
        "{verdict}"
    );
    run.objects()
        .queue("jobs")
        .unwrap()
        .join(Some(Duration::from_secs(1)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pipe_ping_pong_and_peer_close() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let config = PipeConfig {
        ends: Some(["ping".into(), "pong".into()]),
        ..PipeConfig::default()
    };
    run.objects().declare_pipe("chat", config).unwrap();
    let pong = spawn(&rt, &run, &load(&rt, "pong"), "pong", &["chat"]);
    let ping = spawn(&rt, &run, &load(&rt, "ping"), "ping", &["chat", "2000"]);
    assert!(
        expect_ok(&ping)
            .await
            .starts_with("2000 round trips, every pong matched")
    );
    // ping closed its end: pong drains and sees `closed`.
    assert_eq!(
        expect_ok(&pong).await,
        "answered 2000 pings; the other end closed\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_worker_cannot_take_a_granted_pipe_end() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let config = PipeConfig {
        ends: Some(["ping".into(), "pong".into()]),
        ..PipeConfig::default()
    };
    run.objects().declare_pipe("chat", config).unwrap();
    let intruder = spawn(&rt, &run, &load(&rt, "pong"), "intruder", &["chat"]);
    assert_eq!(intruder.join().await, ExitStatus::Exited { code: 2 });
    let err = String::from_utf8_lossy(&intruder.stderr()).into_owned();
    assert!(
        err.contains("Denied") && err.contains("`intruder` holds neither end"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_pipe_peer_closes_the_pipe_for_the_survivor() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let config = PipeConfig {
        capacity: 4,
        ..PipeConfig::default()
    };
    run.objects().declare_pipe("p", config).unwrap();
    let probe = load(&rt, "ipc-probe");
    // The sender fills the pipe and blocks; the peer that never reads is killed.
    let peer = spawn(&rt, &run, &probe, "peer", &["hold-lock", "nothing"]);
    let sleeper = spawn(&rt, &run, &load(&rt, "sleepy"), "reader", &[]);
    let _ = (peer.join().await, sleeper.is_alive());
    let opener = spawn(&rt, &run, &load(&rt, "pong"), "opener", &["p"]);
    // Wait until pong holds its end (it blocks in recv), then start the sender.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sender = spawn(&rt, &run, &probe, "sender", &["send-forever", "p"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sender.is_alive());
    opener.terminate();
    opener.join().await;
    let out = expect_ok(&sender).await;
    assert!(out.starts_with("send failed after"), "{out}");
    assert!(out.trim_end().ends_with("Closed"), "{out}");
    sleeper.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_producer_mid_put_leaves_the_queue_whole() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_queue("q", queue_config(3)).unwrap();
    let probe = load(&rt, "ipc-probe");
    let filler = spawn(&rt, &run, &probe, "filler", &["fill", "q"]);
    wait_for_output(&filler, "blocked after 3").await;
    filler.terminate();
    filler.join().await;
    let queue = run.objects().queue("q").unwrap();
    assert_eq!(queue.len().await, 3, "the blocked put added nothing");
    queue.close().await;
    let drain = spawn(&rt, &run, &probe, "drain", &["drain", "q"]);
    assert_eq!(
        expect_ok(&drain).await,
        "got fill 0\ngot fill 1\ngot fill 2\ndrained\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_consumer_mid_get_loses_nothing() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_queue("q", queue_config(8)).unwrap();
    let probe = load(&rt, "ipc-probe");
    let waiting = spawn(&rt, &run, &probe, "waiting", &["grab", "q"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiting.terminate();
    waiting.join().await;
    let queue = run.objects().queue("q").unwrap();
    queue
        .handle()
        .put(b"precious".to_vec(), None)
        .await
        .unwrap();
    let taker = spawn(&rt, &run, &probe, "taker", &["grab", "q"]);
    wait_for_output(&taker, "grabbed precious").await;
    taker.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_queue_redelivers_a_dead_consumers_message() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let config = QueueConfig {
        acknowledged: true,
        ..queue_config(8)
    };
    run.objects().declare_queue("q", config).unwrap();
    let queue = run.objects().queue("q").unwrap();
    queue.handle().put(b"job-1".to_vec(), None).await.unwrap();
    let probe = load(&rt, "ipc-probe");
    let first = spawn(&rt, &run, &probe, "first", &["grab", "q"]);
    wait_for_output(&first, "grabbed job-1").await;
    assert_eq!(queue.len().await, 0);
    first.terminate(); // dies between get and task-done
    first.join().await;
    assert_eq!(queue.len().await, 1, "the message went back");
    queue.close().await;
    let second = spawn(&rt, &run, &probe, "second", &["drain", "q"]);
    assert_eq!(expect_ok(&second).await, "got job-1\ndrained\n");
    queue.join(Some(Duration::from_secs(1))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_lock_holder_frees_the_lock_and_the_next_holder_is_told() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_lock("state", false).unwrap();
    let probe = load(&rt, "ipc-probe");
    let holder = spawn(&rt, &run, &probe, "holder", &["hold-lock", "state"]);
    wait_for_output(&holder, "holding").await;
    let next = spawn(&rt, &run, &probe, "next", &["check-lock", "state"]);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(next.is_alive(), "waits while the holder lives");
    holder.terminate();
    assert_eq!(expect_ok(&next).await, "previous owner died: true\n");
    let after = spawn(&rt, &run, &probe, "after", &["check-lock", "state"]);
    assert_eq!(expect_ok(&after).await, "previous owner died: false\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn reentrant_and_plain_locks() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_lock("r", true).unwrap();
    run.objects().declare_lock("plain", false).unwrap();
    let probe = load(&rt, "ipc-probe");
    assert_eq!(
        expect_ok(&spawn(&rt, &run, &probe, "r", &["rlock", "r"])).await,
        "reentered\n"
    );
    let out = expect_ok(&spawn(&rt, &run, &probe, "p", &["relock", "plain"])).await;
    assert!(
        out.contains("Invalid") && out.contains("not re-entrant"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_values_naming_what_failed() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let config = QueueConfig {
        capacity: 4,
        max_message: 1024,
        ..QueueConfig::default()
    };
    run.objects().declare_queue("small", config).unwrap();
    let probe = load(&rt, "ipc-probe");
    let big = expect_ok(&spawn(
        &rt,
        &run,
        &probe,
        "big",
        &["put-big", "small", "1025"],
    ))
    .await;
    assert_eq!(big, "Err(Error::TooLarge(1024)) len=0\n");
    let fits = expect_ok(&spawn(
        &rt,
        &run,
        &probe,
        "fits",
        &["put-big", "small", "1024"],
    ))
    .await;
    assert_eq!(fits, "Ok(()) len=1\n");
    let missing = expect_ok(&spawn(
        &rt,
        &run,
        &probe,
        "missing",
        &["open-queue", "nope"],
    ))
    .await;
    assert_eq!(missing, "Some(Error::NotFound(\"queue `nope`\"))\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_never_fire_early_and_do_fire() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects()
        .declare_queue("empty", queue_config(4))
        .unwrap();
    let probe = load(&rt, "ipc-probe");
    for wait in [20u64, 100] {
        let out = expect_ok(&spawn(
            &rt,
            &run,
            &probe,
            "t",
            &["get-timeout", "empty", &wait.to_string()],
        ))
        .await;
        let elapsed: u64 = out
            .trim_end()
            .strip_suffix(" ms")
            .and_then(|s| s.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(out.starts_with("Some(Error::Timeout)"), "{out}");
        // Never early; late only by what a loaded machine's scheduler adds
        // (how late on a quiet one is a latency, for benchmarks to measure).
        assert!(
            elapsed >= wait && elapsed <= wait + 2_000,
            "waited {elapsed} ms for {wait} ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_mistyped_handles_trap_only_that_worker() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_queue("q", queue_config(4)).unwrap();
    let probe = load(&rt, "ipc-probe");
    let bystander = spawn(&rt, &run, &load(&rt, "sleepy"), "bystander", &["300"]);
    for probe_name in ["bad-handle", "wrong-type"] {
        let w = spawn(&rt, &run, &probe, probe_name, &[probe_name, "q"]);
        let status = w.join().await;
        assert!(
            matches!(status, ExitStatus::Trapped { .. }),
            "{probe_name}: {status:?}"
        );
        assert!(!stdout_of(&w).contains("accepted"), "{}", stdout_of(&w));
    }
    assert_eq!(bystander.join().await, ExitStatus::Exited { code: 0 });
}

#[tokio::test(flavor = "multi_thread")]
async fn condition_wait_and_notify_across_workers() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects().declare_lock("state", false).unwrap();
    let cond = run.objects().declare_condition("changed", "state").unwrap();
    let probe = load(&rt, "ipc-probe");
    let waiter = spawn(
        &rt,
        &run,
        &probe,
        "waiter",
        &["cond-wait", "state", "changed", "10000"],
    );
    wait_for_output(&waiter, "waiting").await;
    // The waiter released the lock while waiting.
    let lock = run.objects().lock("state").unwrap();
    let guard = lock.acquire(0, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(cond.notify(1), 1);
    guard.release().await;
    assert_eq!(expect_ok(&waiter).await, "waiting\nnotified: true\n");
    let timed = spawn(
        &rt,
        &run,
        &probe,
        "timed",
        &["cond-wait", "state", "changed", "20"],
    );
    assert_eq!(expect_ok(&timed).await, "waiting\nnotified: false\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn semaphore_bounds_concurrency() {
    let (rt, _) = runtime_with(16);
    let run = Run::new();
    run.objects().declare_semaphore("slots", 2, 2).unwrap();
    run.objects()
        .declare_queue("log", queue_config(64))
        .unwrap();
    let program = load(&rt, "sem-worker");
    let workers: Vec<_> = (0..6)
        .map(|i| spawn(&rt, &run, &program, &format!("s{i}"), &["slots", "30"]))
        .collect();
    for w in &workers {
        expect_ok(w).await;
    }
    let log = run.objects().queue("log").unwrap().handle();
    let (mut now, mut most) = (0i32, 0i32);
    for _ in 0..12 {
        match &log.try_get().await.unwrap().unwrap()[..] {
            b"+" => now += 1,
            _ => now -= 1,
        }
        most = most.max(now);
    }
    assert_eq!(most, 2, "two slots, and they were used together");
}

#[tokio::test(flavor = "multi_thread")]
async fn barrier_releases_everyone_after_the_last_arrival() {
    let (rt, _) = runtime_with(16);
    let run = Run::new();
    run.objects().declare_barrier("start", 4).unwrap();
    run.objects()
        .declare_queue("log", queue_config(64))
        .unwrap();
    let program = load(&rt, "barrier-worker");
    let workers: Vec<_> = (0..4)
        .map(|i| {
            spawn(
                &rt,
                &run,
                &program,
                &format!("b{i}"),
                &["start", &(i * 15).to_string()],
            )
        })
        .collect();
    let mut indexes = Vec::new();
    for w in &workers {
        let out = expect_ok(w).await;
        indexes.push(out.split(' ').nth(5).unwrap().parse::<u32>().unwrap());
    }
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2, 3]);
    let log = run.objects().queue("log").unwrap().handle();
    let mut entries = Vec::new();
    for _ in 0..8 {
        let entry = log.try_get().await.unwrap().unwrap();
        entries.push(String::from_utf8(entry.to_vec()).unwrap());
    }
    assert!(
        entries[..4].iter().all(|e| e.starts_with("before")),
        "{entries:?}"
    );
    assert!(
        entries[4..].iter().all(|e| e.starts_with("after")),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn barrier_party_killed_mid_wait_breaks_it_for_the_rest() {
    let (rt, _) = runtime_with(16);
    let run = Run::new();
    run.objects().declare_barrier("start", 3).unwrap();
    run.objects()
        .declare_queue("log", queue_config(64))
        .unwrap();
    let program = load(&rt, "barrier-worker");
    let a = spawn(&rt, &run, &program, "a", &["start", "0"]);
    let b = spawn(&rt, &run, &program, "b", &["start", "0"]);
    let barrier = run.objects().barrier("start").unwrap();
    while barrier.waiting().await < 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.terminate();
    a.join().await;
    assert_eq!(b.join().await, ExitStatus::Exited { code: 2 });
    assert!(String::from_utf8_lossy(&b.stderr()).contains("Broken"));
    assert!(barrier.is_broken().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn multiplexer_waits_on_two_queues_a_pipe_and_a_timer() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    let a = run.objects().declare_queue("a", queue_config(8)).unwrap();
    let b = run.objects().declare_queue("b", queue_config(8)).unwrap();
    let pipe = run
        .objects()
        .declare_pipe("side", PipeConfig::default())
        .unwrap();
    let mux = spawn(
        &rt,
        &run,
        &load(&rt, "multiplexer"),
        "mux",
        &["a", "b", "side", "10"],
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut host_end = pipe.open(0, "host").unwrap();
    a.handle().put(b"from a".to_vec(), None).await.unwrap();
    wait_for_output(&mux, "a: from a").await;
    host_end
        .send(b"from the pipe".to_vec(), None)
        .await
        .unwrap();
    wait_for_output(&mux, "pipe: from the pipe").await;
    b.handle().put(b"from b".to_vec(), None).await.unwrap();
    wait_for_output(&mux, "b: from b").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.close().await;
    b.close().await;
    host_end.close();
    let out = expect_ok(&mux).await;
    assert!(out.contains("all sources closed: 3 messages"), "{out}");
    let ticks: u32 = out
        .rsplit("messages, ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ticks >= 5, "the timer fired while waiting: {out}");
    assert_eq!(host_end.try_recv(), Err(IpcError::Closed));
}

/// The host's peak resident set so far (`VmHWM`), in bytes.
fn host_peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Millions of zero-length messages in one `put-many` (4 guest bytes each)
/// are refused before the host allocates anything per message; before the
/// fix each call made the host allocate ~56 bytes a message (450 MB here).
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_batch_of_empty_messages_is_refused_before_the_host_allocates() {
    let (rt, _) = runtime_with(8);
    let run = Run::new();
    run.objects()
        .declare_queue("q", queue_config(1_000_000))
        .unwrap();
    let hostile = load(&rt, "ipc-hostile");
    let before = host_peak_rss();
    let n = (8u32 << 20).to_string();
    let out = expect_ok(&spawn(
        &rt,
        &run,
        &hostile,
        "h",
        &["put-many-empty", "q", &n],
    ))
    .await;
    assert_eq!(
        out,
        "Err(Error::Invalid(\"a batch of 8388608 messages can never fit a capacity of 1000000\")) len=0\n"
    );
    let grown = host_peak_rss().saturating_sub(before);
    // The guest's own memory and the lifted list of lengths (32 MiB) remain.
    assert!(grown < 200 << 20, "the host's peak grew by {grown} bytes");
    let fits = expect_ok(&spawn(
        &rt,
        &run,
        &hostile,
        "f",
        &["put-many-empty", "q", "1000"],
    ))
    .await;
    assert_eq!(fits, "Ok(()) len=1000\n");
}

/// A queue's bytes are bounded: a producer filling `max-bytes` with few
/// large messages gets "full" (a timeout), and a batch larger than the
/// whole queue is `too-large` at once.
#[tokio::test]
async fn a_queue_holds_at_most_max_bytes() {
    let run = Run::new();
    let config = QueueConfig {
        capacity: 1000,
        max_message: 1024,
        max_bytes: 4096,
        ..QueueConfig::default()
    };
    let q = run.objects().declare_queue("q", config).unwrap();
    let h = q.handle();
    let short = Some(Duration::from_millis(20));
    h.put_many(vec![vec![0; 1024]; 4], None).await.unwrap();
    assert!(
        !h.try_put(vec![0]).await.unwrap(),
        "4 KiB held: the queue is full"
    );
    assert_eq!(h.put(vec![0; 1], short).await, Err(IpcError::Timeout));
    assert_eq!(
        h.put_many(vec![vec![0; 1024]; 5], None).await,
        Err(IpcError::TooLarge(4096))
    );
    h.get(None).await.unwrap();
    h.put(vec![0; 1000], short).await.unwrap();
}
