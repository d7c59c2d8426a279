//! Issue 15's descriptor attacks, run end to end through the library
//! runtime with the `hostile-fd` guest: a worker that opens files without
//! closing them gets the closest WASI error to `EMFILE` at its limit
//! (`insufficient-memory`, which wasi-libc gives the guest as `ENOMEM`,
//! errno 48), never a trap; the host's own descriptors stay bounded; a
//! sibling started before the attack goes on opening files.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{denials, load, runtime_with, stdout_of};
use corral::{ExitStatus, PolicyFile, Run, Runtime, Stdio, Worker, WorkerSpec};

/// wasi-libc's `ENOMEM`: what `insufficient-memory` becomes in the guest.
const WASI_ENOMEM: i32 = 48;

/// Descriptors the test process may open beside the attacker's charged
/// ones while the attack runs: the sibling's mount and files, the compile
/// cache, the runtime's threads and other tests of this binary.
const FD_OVERHEAD: usize = 64;

/// Held by each test that opens host descriptors in this process: they
/// count `/proc/self/fd`, which a test running beside them would change.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn spawn(rt: &Runtime, name: &str, args: &[&str], mount: &Path, policy: &str) -> Worker {
    let mut spec = WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .run(&Run::new())
        .mount(format!("{}:/d:rw", mount.display()).parse().unwrap());
    if !policy.is_empty() {
        PolicyFile::parse(Path::new("test-policy.toml"), policy)
            .unwrap()
            .profile(None)
            .unwrap()
            .apply_to(&mut spec);
    }
    rt.spawn(&load(rt, "hostile-fd"), spec)
}

/// A sibling opening, writing, reading and closing a file on a host mount
/// every 20 ms for about two seconds.
fn sibling(rt: &Runtime, dir: &Path) -> Worker {
    spawn(rt, "sibling", &["open-close", "/d", "100"], dir, "")
}

async fn sibling_ok(sibling: Worker) {
    let status = tokio::time::timeout(Duration::from_secs(60), sibling.join())
        .await
        .expect("the sibling finishes");
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&sibling.stderr())
    );
    assert_eq!(stdout_of(&sibling), "ok 100\n");
}

/// Waits until the attacker has printed its whole report.
async fn report_of(worker: &Worker) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = stdout_of(worker);
        if out.contains("after closing one") {
            return out;
        }
        if let Some(status) = worker.try_status() {
            panic!(
                "the attacker ended early: {status:?}\n{out}{}",
                String::from_utf8_lossy(&worker.stderr())
            );
        }
        assert!(Instant::now() < deadline, "no report in time: {out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The report of an attacker refused after `opened` files.
fn expected(opened: usize) -> String {
    format!(
        "opened {opened}\nerror raw={WASI_ENOMEM} kind=OutOfMemory: Out of memory (os error {WASI_ENOMEM})\n\
         after closing one: ok\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn open_forever_on_a_host_mount_stops_at_the_default_max_host_fds() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (rt, events) = runtime_with(8);
    let (attacked, quiet) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sibling = sibling(&rt, quiet.path());
    let before = open_fds();
    let attacker = spawn(
        &rt,
        "attacker",
        &["open-forever", "/d", "sleep"],
        attacked.path(),
        "",
    );
    let report = report_of(&attacker).await;
    let during = open_fds();
    // The mount's root is one of the 1024 the worker may make the host hold.
    assert_eq!(
        report,
        expected(corral::ledger::DEFAULT_MAX_HOST_FDS as usize - 1)
    );
    assert!(
        during < before + corral::ledger::DEFAULT_MAX_HOST_FDS as usize + FD_OVERHEAD,
        "the host holds {during} descriptors, {before} before the attack"
    );
    let denied = denials(&events.events(), "attacker");
    assert_eq!(
        denied.len(),
        1,
        "one event, not one per refusal: {denied:?}"
    );
    assert_eq!(denied[0].0, "max-host-fds");
    assert_eq!(denied[0].1, "holding more than 1024 host file descriptors");
    sibling_ok(sibling).await;
    attacker.terminate();
    attacker.join().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() >= before + FD_OVERHEAD {
        assert!(
            Instant::now() < deadline,
            "the attacker's descriptors stay open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_host_fds_and_max_handles_come_from_the_policy() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (rt, events) = runtime_with(8);
    let attacked = tempfile::tempdir().unwrap();
    let policy = "[profiles.p]\nmax-host-fds = 100\n";
    let attacker = spawn(
        &rt,
        "fds",
        &["open-forever", "/d", "exit"],
        attacked.path(),
        policy,
    );
    assert_eq!(attacker.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&attacker), expected(99));
    let denied = denials(&events.events(), "fds");
    assert_eq!(
        denied,
        [(
            "max-host-fds".to_string(),
            "holding more than 100 host file descriptors".to_string()
        )]
    );

    let policy = "[profiles.p]\nmax-handles = 50\n";
    let attacker = spawn(
        &rt,
        "handles",
        &["open-forever", "/d", "exit"],
        attacked.path(),
        policy,
    );
    assert_eq!(attacker.join().await, ExitStatus::Exited { code: 0 });
    assert_eq!(stdout_of(&attacker), expected(49));
    let denied = denials(&events.events(), "handles");
    assert_eq!(
        denied,
        [(
            "max-handles".to_string(),
            "holding more than 50 open handles (files, streams, sockets)".to_string()
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_forever_on_scratch_gets_an_error_at_max_handles_not_a_trap() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (rt, events) = runtime_with(8);
    let quiet = tempfile::tempdir().unwrap();
    let sibling = sibling(&rt, quiet.path());
    let spec = WorkerSpec::new("attacker")
        .args(["open-forever", "/d", "exit"])
        .stdio(Stdio::Capture)
        .run(&Run::new())
        .mount("@scratch:/d".parse().unwrap());
    let attacker = rt.spawn(&load(&rt, "hostile-fd"), spec);
    let status = tokio::time::timeout(Duration::from_secs(300), attacker.join())
        .await
        .expect("the attacker ends");
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}",
        String::from_utf8_lossy(&attacker.stderr())
    );
    // The preopen is one of the worker's handles.
    assert_eq!(
        stdout_of(&attacker),
        expected(corral::ledger::DEFAULT_MAX_HANDLES as usize - 1)
    );
    let denied = denials(&events.events(), "attacker");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].0, "max-handles");
    sibling_ok(sibling).await;
}

/// The CLI under a soft `RLIMIT_NOFILE` of 300 and a hard one of 600: it
/// raises the soft limit to 600, so workers together may hold 600 - 256 =
/// 344 descriptors (44 had it not raised it), fewer than one worker's
/// default of 1024: the attacker meets the host-wide pool, and the host
/// keeps its reserve to finish the run and report.
#[test]
fn the_cli_raises_its_descriptor_limit_and_keeps_a_reserve_for_the_host() {
    use std::os::unix::process::CommandExt;

    let attacked = tempfile::tempdir().unwrap();
    let mount = format!("{}:/d:rw", attacked.path().display());
    let guest = common::guest("hostile-fd");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .args(["run", "--cache-dir"])
        .arg(common::shared_cache_dir())
        .args(["--max-workers", "8", "--mount", &mount])
        .arg(&guest)
        .args(["--", "open-forever", "/d", "exit"]);
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 300,
                rlim_max: 600,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = common::child::output_within(&mut command, b"", Duration::from_secs(120));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let pool = 600 - corral::ledger::HOST_FD_RESERVE;
    // The mount's root is one of the pool's; one worker run as a program
    // writes its output unprefixed.
    assert!(
        stdout.starts_with(&format!("opened {}\n", pool - 1)),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "denied holding more host file descriptors: all workers together hold the host's \
             {pool} (RLIMIT_NOFILE minus a reserve of 256) (policy: max-host-fds)"
        )),
        "{stderr}"
    );
}
