//! Issue 15's byte attacks on the in-memory filesystem, through the real
//! runtime and the `hostile-fs` guest: each attack gets a clean error (or
//! is bounded), a sibling worker started before it still reads and writes
//! files and finishes, and this process's peak RSS stays under
//! `PEAK_RSS_BOUND`, which every attack passed before the fix (2.1 GB for a
//! 2 GiB `set_len`, 4.7 GB for 200 listings of 100k names).

mod common;

use std::time::Duration;

use common::{load, runtime, stdout_of};
use corral::vfs::{MountSource, MountSpec};
use corral::{ExitStatus, Limits, Program, Run, Runtime, Stdio, Worker, WorkerSpec};

/// What the test process may hold at its peak: the runtime, compiled
/// guests and the tests' own trees, far below what any attack made it hold.
const PEAK_RSS_BOUND_KB: u64 = 1 << 20;

/// Every wait has this deadline.
const DEADLINE: Duration = Duration::from_secs(120);

fn scratch() -> MountSpec {
    MountSpec {
        source: MountSource::Scratch,
        guest_path: "/".into(),
        read_only: false,
    }
}

fn spawn(rt: &Runtime, run: &Run, program: &Program, args: &[&str], mount: MountSpec) -> Worker {
    let spec = WorkerSpec::new(args[0])
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .limits(Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        })
        .mount(mount)
        .run(run);
    rt.spawn(program, spec)
}

/// Waits for `worker` to exit 0 and returns its output.
async fn finished(worker: &Worker) -> String {
    let status = tokio::time::timeout(DEADLINE, worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish in time", worker.name()));
    let out = stdout_of(worker);
    let err = String::from_utf8_lossy(&worker.stderr()).into_owned();
    assert_eq!(status, ExitStatus::Exited { code: 0 }, "{out}{err}");
    out
}

/// The sibling started before an attack: it must still write, read back
/// and finish all its rounds.
fn sibling(rt: &Runtime, run: &Run, program: &Program) -> Worker {
    spawn(
        rt,
        run,
        program,
        &["sibling", "/sibling.txt", "50"],
        MountSpec::shared_root(),
    )
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn assert_rss_bounded() {
    let peak = peak_rss_kb();
    assert!(
        peak < PEAK_RSS_BOUND_KB,
        "peak RSS {peak} KiB passes {PEAK_RSS_BOUND_KB} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_files_in_scratch_are_charged_to_the_memory_cap() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let run = Run::new();
    let neighbour = sibling(&rt, &run, &program);
    let set_len = spawn(
        &rt,
        &run,
        &program,
        &["set-len", "/f", "2147483648"],
        scratch(),
    );
    let write_at = spawn(
        &rt,
        &run,
        &program,
        &["write-at", "/f", "2147483648"],
        scratch(),
    );
    let out = finished(&set_len).await;
    // ENOSPC (wasi-libc's 51) from `set-size`: nothing was allocated.
    assert!(
        out.contains("set-len: error kind=StorageFull os=51"),
        "{out}"
    );
    let out = finished(&write_at).await;
    // The write goes through an output stream, whose failures wasi-libc
    // reports as EIO (29); the host refused it with insufficient-space.
    assert!(
        out.contains("write-at: error kind=Uncategorized os=29"),
        "{out}"
    );
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    assert_rss_bounded();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_tree_has_a_default_byte_quota() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let run = Run::new();
    let neighbour = sibling(&rt, &run, &program);
    let attack = spawn(
        &rt,
        &run,
        &program,
        &["set-len", "/big", "2147483648"],
        MountSpec::shared_root(),
    );
    let out = finished(&attack).await;
    assert!(
        out.contains("set-len: error kind=StorageFull os=51"),
        "{out}"
    );
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    assert!(run.fs().usage().bytes < 1 << 20);
    assert_rss_bounded();
}

#[tokio::test(flavor = "multi_thread")]
async fn hard_links_count_against_the_private_inode_quota() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let run = Run::new();
    let neighbour = sibling(&rt, &run, &program);
    let attack = spawn(
        &rt,
        &run,
        &program,
        &["link-many", "/f", "1000000"],
        scratch(),
    );
    let out = finished(&attack).await;
    // 64 MiB of budget give 65,536 inodes: the root, the file, and its names.
    assert!(out.contains("linked 65534\n"), "{out}");
    assert!(
        out.contains("link-many: error kind=StorageFull os=51"),
        "{out}"
    );
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    assert_rss_bounded();
}

#[tokio::test(flavor = "multi_thread")]
async fn open_listings_hold_one_batch_each() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let run = Run::new();
    let names = spawn(
        &rt,
        &run,
        &program,
        &["many-names", "/names", "30000", "200"],
        MountSpec::shared_root(),
    );
    let out = finished(&names).await;
    assert!(out.contains("many-names: ok created 30000"), "{out}");
    let neighbour = sibling(&rt, &run, &program);
    // Copied per stream, 300 listings of 30k 200-byte names held 2.5 GB.
    let holder = spawn(
        &rt,
        &run,
        &program,
        &["hold-listings", "/names", "300"],
        MountSpec::shared_root(),
    );
    let out = finished(&holder).await;
    assert!(out.contains("hold-listings: ok held 300"), "{out}");
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    assert_rss_bounded();
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_of_a_host_directory_are_charged_to_the_memory_cap() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let dir = tempfile::tempdir().unwrap();
    for n in 0..2000 {
        std::fs::File::create(dir.path().join(format!("{n:0200}"))).unwrap();
    }
    let run = Run::new();
    let neighbour = sibling(&rt, &run, &program);
    let mount = format!("{}:/host:ro", dir.path().display());
    // A host directory is listed whole: 2,000 listings of these 2,000
    // names would hold about 900 MB if nothing charged them.
    let holder = spawn(
        &rt,
        &run,
        &program,
        &["hold-listings", "/host", "2000"],
        mount.parse().unwrap(),
    );
    let out = finished(&holder).await;
    // ENOMEM (wasi-libc's 48) once the listings held fill the 64 MiB cap:
    // about 140 of them, each 2,000 x (200 + 32) bytes. Uncharged, they
    // went on to the 1,024 host descriptors (whose refusal is ENOMEM too).
    assert!(
        out.contains("hold-listings: error kind=OutOfMemory os=48"),
        "{out}"
    );
    let listed: usize = out
        .lines()
        .find_map(|line| line.strip_prefix("listed "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out}"));
    assert!((100..150).contains(&listed), "{listed} listings held");
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    assert_rss_bounded();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_deeper_than_the_stack_is_saved() {
    let rt = runtime();
    let program = load(&rt, "hostile-fs");
    let run = Run::new();
    let neighbour = sibling(&rt, &run, &program);
    let attack = spawn(
        &rt,
        &run,
        &program,
        &["deep-dirs", "10000"],
        MountSpec::shared_root(),
    );
    let out = finished(&attack).await;
    assert!(out.contains("deep-dirs: ok depth 10000"), "{out}");
    let out = finished(&neighbour).await;
    assert!(out.contains("sibling: ok 50 rounds"), "{out}");
    let saved = tempfile::tempdir().unwrap();
    let fs = run.fs().clone();
    let target = saved.path().join("out");
    // On a thread with a 2 MiB stack, as tokio's workers have: the
    // recursive save overflowed it.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || fs.save_to(&target))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert_rss_bounded();
}
