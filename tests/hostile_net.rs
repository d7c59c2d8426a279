//! Issue 15's socket attacks, run end to end through the library runtime
//! with the `hostile-net` guest: a worker with a network grant that opens
//! sockets without closing them (TCP listeners, UDP sockets, accepted
//! connections) gets `EMFILE` at its `max-host-fds` or `max-handles`
//! (wasi:sockets' `new-socket-limit`), never a trap, and the host's own
//! descriptors stay bounded; a sibling started before the attack goes on
//! opening files and sockets.

mod common;

use std::time::{Duration, Instant};

use common::{denials, load, profile, runtime_with, stdout_of};
use corral::{ExitStatus, Run, Runtime, Stdio, Worker, WorkerSpec};

/// wasi-libc's `EMFILE`: what `new-socket-limit` becomes in the guest.
const WASI_EMFILE: i32 = 33;

/// Descriptors the test process may open beside the attacker's charged
/// ones while the attack runs: the sibling's mount, file and sockets, the
/// compile cache and the runtime's threads.
const FD_OVERHEAD: usize = 64;

/// Held by each test: they count `/proc/self/fd`, which a test running
/// beside them would change.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Binds, connects and sends anywhere on 127.0.0.1.
const NETWORK: &str = "[profiles.p.network]\nbind = [\"127.0.0.1:*\"]\n\
                       connect = [\"127.0.0.1:*\"]\nudp = [\"127.0.0.1:*\"]\n";

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn spawn(rt: &Runtime, name: &str, args: &[&str], limits: &str) -> Worker {
    let mut spec = WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .run(&Run::new());
    profile(&format!("[profiles.p]\n{limits}{NETWORK}")).apply_to(&mut spec);
    rt.spawn(&load(rt, "hostile-net"), spec)
}

async fn join(worker: &Worker) -> ExitStatus {
    tokio::time::timeout(Duration::from_secs(120), worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} did not end in time", worker.name()))
}

/// The report of an attacker refused after `opened` sockets.
fn expected(opened: usize) -> String {
    format!(
        "opened {opened}\nerror raw={WASI_EMFILE} kind=Uncategorized: \
         No file descriptors available (os error {WASI_EMFILE})\nafter closing one: ok\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_sockets_forever_stop_at_the_default_max_host_fds() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (rt, events) = runtime_with(8);
    let quiet = tempfile::tempdir().unwrap();
    let mut spec = WorkerSpec::new("sibling")
        .args(["sibling", "/d", "100"])
        .stdio(Stdio::Capture)
        .run(&Run::new())
        .mount(format!("{}:/d:rw", quiet.path().display()).parse().unwrap());
    profile(&format!("[profiles.p]\n{NETWORK}")).apply_to(&mut spec);
    let sibling = rt.spawn(&load(&rt, "hostile-net"), spec);
    let before = open_fds();
    let attacker = spawn(&rt, "attacker", &["sockets-forever", "tcp", "sleep"], "");
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let out = stdout_of(&attacker);
        if out.contains("after closing one") {
            break out;
        }
        assert!(
            attacker.is_alive() && Instant::now() < deadline,
            "no report: {out}{}",
            String::from_utf8_lossy(&attacker.stderr())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let during = open_fds();
    let limit = corral::ledger::DEFAULT_MAX_HOST_FDS as usize;
    assert_eq!(report, expected(limit));
    assert!(
        during < before + limit + FD_OVERHEAD,
        "the host holds {during} descriptors, {before} before the attack"
    );
    let denied = denials(&events.events(), "attacker");
    assert_eq!(
        denied,
        [(
            "max-host-fds".to_string(),
            "holding more than 1024 host file descriptors".to_string()
        )]
    );
    assert_eq!(
        join(&sibling).await,
        ExitStatus::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&sibling.stderr())
    );
    assert_eq!(stdout_of(&sibling), "ok 100\n");
    attacker.terminate();
    join(&attacker).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() >= before + FD_OVERHEAD {
        assert!(
            Instant::now() < deadline,
            "the attacker's sockets stay open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_and_accepted_sockets_are_charged_under_the_policys_limits() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (rt, events) = runtime_with(8);
    let cases: [(&str, &[&str], &str, &str); 3] = [
        (
            "udp",
            &["sockets-forever", "udp", "exit"],
            "max-host-fds = 40\n",
            "max-host-fds",
        ),
        (
            "handles",
            &["sockets-forever", "tcp", "exit"],
            "max-handles = 30\n",
            "max-handles",
        ),
        (
            "accept",
            &["accept-forever"],
            "max-host-fds = 40\n",
            "max-host-fds",
        ),
    ];
    for (name, args, limits, rule) in cases {
        let attacker = spawn(&rt, name, args, limits);
        assert_eq!(
            join(&attacker).await,
            ExitStatus::Exited { code: 0 },
            "{name}: {}",
            String::from_utf8_lossy(&attacker.stderr())
        );
        let denied = denials(&events.events(), name);
        assert_eq!(denied.len(), 1, "{name}: {denied:?}");
        assert_eq!(denied[0].0, rule);
        let out = stdout_of(&attacker);
        match name {
            "udp" => assert_eq!(out, expected(40)),
            "handles" => assert_eq!(out, expected(30)),
            // The listener, 19 pairs, and the 40th socket: the connecting
            // end of a connection the worker cannot accept.
            _ => assert_eq!(
                out,
                format!(
                    "pairs 19\naccept error raw={WASI_EMFILE} kind=Uncategorized: \
                     No file descriptors available (os error {WASI_EMFILE})\n"
                )
            ),
        }
    }
}
