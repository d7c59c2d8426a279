//! The shared virtual filesystem through real guests: the Rust (std::fs)
//! and C (wasi-libc, adapted preview1 module) conformance guests on the
//! in-memory tree and on host directories; escapes; read-only mounts; no
//! mounts; sharing between workers; quotas; concurrency; persistence.

mod common;

use std::path::{Path, PathBuf};

use common::{load, root, runtime, stdout_of};
use corral::vfs::{FileKind, Limits, MemFs, Mount, MountSource, MountSpec, Node, OpenOptions};
use corral::{ExitStatus, Program, Run, Runtime, Stdio, Worker, WorkerSpec};

/// The C conformance guest, built by `make guests` (guests/c/Makefile).
fn c_guest(rt: &Runtime) -> Program {
    let path = root().join("guests/c/build/fs-conformance.wasm");
    assert!(
        path.exists(),
        "{} is not built: run `make guests` first",
        path.display()
    );
    rt.load(&path).expect("loading the C guest")
}

fn rust_guest(rt: &Runtime) -> Program {
    load(rt, "fs-conformance")
}

fn host_mount(dir: &Path, guest_path: &str, read_only: bool) -> MountSpec {
    MountSpec {
        source: MountSource::Host {
            dir: dir.to_path_buf(),
        },
        guest_path: guest_path.into(),
        read_only,
    }
}

fn spawn(
    rt: &Runtime,
    run: &Run,
    program: &Program,
    name: &str,
    args: &[&str],
    mounts: &[MountSpec],
) -> Worker {
    let mut spec = WorkerSpec::new(name)
        .args(args.iter().copied())
        .stdio(Stdio::Capture)
        .run(run);
    for mount in mounts {
        spec = spec.mount(mount.clone());
    }
    rt.spawn(program, spec)
}

/// Waits for a conformance run and checks that it passed all `checks`
/// (so a guest that stops early fails too); returns its output.
async fn passes(worker: &Worker, checks: u32) -> String {
    let status = worker.join().await;
    let out = stdout_of(worker);
    let report = format!(
        "{}: {status}\n{out}{}",
        worker.name(),
        String::from_utf8_lossy(&worker.stderr())
    );
    assert!(!out.contains("FAIL"), "{report}");
    assert!(
        out.contains(&format!("\n{checks} checks, 0 failed\n")),
        "{report}"
    );
    assert_eq!(status, ExitStatus::Exited { code: 0 }, "{report}");
    out
}

/// The whole contents of the regular file at `path` of `fs`.
fn read_tree_file(fs: &MemFs, path: &str) -> Vec<u8> {
    let root = Mount::mem(fs, "/", true).expect("mount").root();
    let options = OpenOptions {
        read: true,
        follow_symlinks: true,
        ..OpenOptions::default()
    };
    let Node::File(file) = root.open_at(path, options).expect("open") else {
        panic!("{path} is a directory");
    };
    let mut data = Vec::new();
    loop {
        let chunk = file.read_at(data.len() as u64, 1 << 20).expect("read");
        if chunk.is_empty() {
            return data;
        }
        data.extend(chunk);
    }
}

/// The names in the directory at `path` of `fs`.
fn list_tree_dir(fs: &MemFs, path: &str) -> Vec<String> {
    let root = Mount::mem(fs, path, true).expect("mount").root();
    let entries = root.read_dir().expect("read_dir");
    entries.into_iter().map(|entry| entry.name).collect()
}

const RUST_ALL_CHECKS: u32 = 36;
const C_ALL_CHECKS: u32 = 17;

#[tokio::test(flavor = "multi_thread")]
async fn rust_conformance_on_shared_root() {
    let rt = runtime();
    let run = Run::new();
    let worker = spawn(
        &rt,
        &run,
        &rust_guest(&rt),
        "rust-conf",
        &["all", "/"],
        &[MountSpec::shared_root()],
    );
    passes(&worker, RUST_ALL_CHECKS).await;
    assert!(
        list_tree_dir(run.fs(), "/").is_empty(),
        "the guest cleans up"
    );
    assert_eq!(run.fs().usage().inodes, 1, "only the root is left");
    assert_eq!(run.fs().usage().bytes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_conformance_on_host_dir() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(
        &rt,
        &Run::new(),
        &rust_guest(&rt),
        "rust-conf",
        &["all", "/data"],
        &[host_mount(dir.path(), "/data", false)],
    );
    passes(&worker, RUST_ALL_CHECKS).await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn c_conformance_on_shared_root() {
    let rt = runtime();
    let run = Run::new();
    let worker = spawn(
        &rt,
        &run,
        &c_guest(&rt),
        "c-conf",
        &["all", "/"],
        &[MountSpec::shared_root()],
    );
    passes(&worker, C_ALL_CHECKS).await;
    assert!(
        list_tree_dir(run.fs(), "/").is_empty(),
        "the guest cleans up"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn c_conformance_on_host_dir() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn(
        &rt,
        &Run::new(),
        &c_guest(&rt),
        "c-conf",
        &["all", "/data"],
        &[host_mount(dir.path(), "/data", false)],
    );
    passes(&worker, C_ALL_CHECKS).await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Both guests side by side in one run, on a shared subtree and a scratch
/// mount: mounts of several kinds in one table.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_on_subtree_and_scratch_mounts() {
    let rt = runtime();
    let run = Run::new();
    let setup = Mount::mem(run.fs(), "/", false).unwrap().root();
    setup.create_dir_at("jobs").unwrap();
    let subtree = MountSpec {
        source: MountSource::Shared {
            subtree: "/jobs".into(),
        },
        guest_path: "/".into(),
        read_only: false,
    };
    let scratch: MountSpec = "@scratch:/tmp".parse().unwrap();
    let mounts = [subtree, scratch];
    let rust = spawn(&rt, &run, &rust_guest(&rt), "r", &["all", "/tmp"], &mounts);
    let c = spawn(&rt, &run, &c_guest(&rt), "c", &["all", "/"], &mounts);
    passes(&rust, RUST_ALL_CHECKS).await;
    passes(&c, C_ALL_CHECKS).await;
    assert_eq!(list_tree_dir(run.fs(), "/"), ["jobs"]);
}

/// A read-only mount of the tree and of a host directory: reads work, every
/// write is `read-only` (EROFS), and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn read_only_mounts_refuse_writes() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.txt"), "seed\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let run = Run::new();
    run.fs().seed_from(dir.path()).unwrap();
    let usage = run.fs().usage();
    let tree_ro = MountSpec {
        read_only: true,
        ..MountSpec::shared_root()
    };
    let host_ro = host_mount(dir.path(), "/host", true);
    let mounts = [tree_ro, host_ro];
    let (rust, c) = (rust_guest(&rt), c_guest(&rt));
    for root in ["/", "/host"] {
        let r = spawn(&rt, &run, &rust, "r", &["read-only", root], &mounts);
        passes(&r, 12).await;
        let c = spawn(&rt, &run, &c, "c", &["read-only", root], &mounts);
        passes(&c, 2).await;
    }
    assert_eq!(run.fs().usage(), usage);
    assert_eq!(read_tree_file(run.fs(), "seed.txt"), b"seed\n");
    let mut host: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    host.sort();
    assert_eq!(host, ["seed.txt", "sub"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seed.txt")).unwrap(),
        "seed\n"
    );
}

/// Symlinks that lead out of a mount, made on the host (where nothing stops
/// them) and carried into the tree by `seed_from`, are never followed; nor
/// is a `..` above the mount. A subtree mount stops them at the subtree,
/// though the tree goes on above it.
#[tokio::test(flavor = "multi_thread")]
async fn escapes_are_refused() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    std::os::unix::fs::symlink("/", inner.join("abs-root")).unwrap();
    std::os::unix::fs::symlink("/etc", inner.join("abs-etc")).unwrap();
    std::os::unix::fs::symlink("../..", inner.join("up")).unwrap();
    let run = Run::new();
    run.fs().seed_from(dir.path()).unwrap();
    let subtree = MountSpec {
        source: MountSource::Shared {
            subtree: "/inner".into(),
        },
        guest_path: "/".into(),
        read_only: false,
    };
    let cases = [
        ("host", "/data", host_mount(&inner, "/data", false)),
        ("tree", "/inner", MountSpec::shared_root()),
        ("subtree", "/", subtree),
    ];
    let rust = rust_guest(&rt);
    for (name, path, mount) in cases {
        let worker = spawn(&rt, &run, &rust, name, &["escape", path], &[mount]);
        passes(&worker, 4).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_mounts_no_filesystem() {
    let rt = runtime();
    let run = Run::new();
    Mount::mem(run.fs(), "/", false)
        .unwrap()
        .root()
        .create_dir_at("etc")
        .unwrap();
    let worker = spawn(&rt, &run, &rust_guest(&rt), "blind", &["no-fs"], &[]);
    let out = passes(&worker, 5).await;
    assert!(out.contains("ok no-fs /etc/passwd"), "{out}");
    assert_eq!(list_tree_dir(run.fs(), "/"), ["etc"], "nothing was created");
}

/// Files written by one worker (or by the host) are there for the next
/// worker of the same run, and for the host, through `Run::fs`; another
/// run's tree is a different world.
#[tokio::test(flavor = "multi_thread")]
async fn workers_of_one_run_share_the_tree() {
    let rt = runtime();
    let rust = rust_guest(&rt);
    let run = Run::new();
    let root = [MountSpec::shared_root()];
    let writer = spawn(
        &rt,
        &run,
        &rust,
        "writer",
        &["put", "/", "note.txt", "from the writer"],
        &root,
    );
    passes(&writer, 1).await;
    assert_eq!(read_tree_file(run.fs(), "note.txt"), b"from the writer");
    let reader = spawn(&rt, &run, &rust, "reader", &["get", "/", "note.txt"], &root);
    let out = passes(&reader, 1).await;
    assert!(out.contains("content: from the writer\n"), "{out}");

    // The C guest (an adapted preview1 module) sees the same tree.
    let c = spawn(&rt, &run, &c_guest(&rt), "c", &["all", "/"], &root);
    passes(&c, C_ALL_CHECKS).await;
    assert_eq!(list_tree_dir(run.fs(), "/"), ["note.txt"]);

    let other_run = Run::new();
    let stranger = spawn(
        &rt,
        &other_run,
        &rust,
        "stranger",
        &["get", "/", "note.txt"],
        &root,
    );
    assert_eq!(stranger.join().await, ExitStatus::Exited { code: 1 });
    assert!(
        stdout_of(&stranger).contains("FAIL get: read: "),
        "{}",
        stdout_of(&stranger)
    );
}

/// Past the run's quota a write fails with `insufficient-space` (ENOSPC)
/// and leaves the file as it was; removing files gives the space back.
#[tokio::test(flavor = "multi_thread")]
async fn quotas_give_enospc_and_are_not_half_applied() {
    let rt = runtime();
    let limits = Limits {
        max_bytes: 10_000,
        max_inodes: 12,
    };
    let root = [MountSpec::shared_root()];
    let run = Run::with_fs_limits(limits);
    let rust = spawn(&rt, &run, &rust_guest(&rt), "r", &["quota", "/"], &root);
    let out = passes(&rust, 6).await;
    // The root and q.bin leave room for 10 directories.
    assert!(out.contains("created 10 directories"), "{out}");
    let usage = run.fs().usage();
    assert_eq!((usage.bytes, usage.inodes), (9000, 12));
    assert_eq!(read_tree_file(run.fs(), "again.bin"), vec![5u8; 9000]);

    let run = Run::with_fs_limits(limits);
    let c = spawn(&rt, &run, &c_guest(&rt), "c", &["quota", "/"], &root);
    let out = passes(&c, 4).await;
    assert!(out.contains("created 10 directories"), "{out}");
    let usage = run.fs().usage();
    assert_eq!((usage.bytes, usage.inodes), (4500, 12));
    assert_eq!(read_tree_file(run.fs(), "again.bin"), vec![2u8; 4500]);
}

/// Several writers append whole lines to one file while readers read it:
/// no line is torn or lost, each writer's lines stay in order.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_and_readers() {
    const WRITERS: usize = 4;
    const LINES: usize = 500;
    let rt = runtime();
    let run = Run::new();
    let rust = rust_guest(&rt);
    let root = [MountSpec::shared_root()];
    let total = (WRITERS * LINES).to_string();
    let readers: Vec<Worker> = (0..3)
        .map(|i| {
            spawn(
                &rt,
                &run,
                &rust,
                &format!("r{i}"),
                &["scan", "/", "log.txt", &total],
                &root,
            )
        })
        .collect();
    let writers: Vec<Worker> = (0..WRITERS)
        .map(|i| {
            let id = format!("w{i}");
            spawn(
                &rt,
                &run,
                &rust,
                &id,
                &["append", "/", "log.txt", &id, &LINES.to_string()],
                &root,
            )
        })
        .collect();
    for worker in writers.iter().chain(&readers) {
        passes(worker, 1).await;
    }
    let log = String::from_utf8(read_tree_file(run.fs(), "log.txt")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), WRITERS * LINES);
    for i in 0..WRITERS {
        let id = format!("w{i}");
        let mine: Vec<String> = lines
            .iter()
            .filter_map(|line| line.strip_prefix(&format!("{id} ")))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = (0..LINES).map(|n| format!("{n:05}")).collect();
        assert_eq!(mine, expected, "lines of {id}");
    }
}

/// A run seeded from a host directory, changed by a guest, saved to another.
#[tokio::test(flavor = "multi_thread")]
async fn seed_guest_save_round_trip() {
    let rt = runtime();
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("in.txt"), "hello from disk\n").unwrap();
    std::fs::create_dir(input.path().join("sub")).unwrap();
    std::fs::write(input.path().join("sub/nested.txt"), "nested").unwrap();
    std::os::unix::fs::symlink("sub/nested.txt", input.path().join("link")).unwrap();
    let run = Run::new();
    run.fs().seed_from(input.path()).unwrap();

    let worker = spawn(
        &rt,
        &run,
        &rust_guest(&rt),
        "upcase",
        &["upcase", "/", "link", "out.txt"],
        &[MountSpec::shared_root()],
    );
    passes(&worker, 1).await;

    let output = tempfile::tempdir().unwrap();
    let saved: PathBuf = output.path().join("saved");
    run.fs().save_to(&saved).unwrap();
    let read = |name: &str| std::fs::read_to_string(saved.join(name)).unwrap();
    assert_eq!(read("out.txt"), "NESTED");
    assert_eq!(read("in.txt"), "hello from disk\n");
    assert_eq!(read("sub/nested.txt"), "nested");
    assert_eq!(
        std::fs::read_link(saved.join("link")).unwrap(),
        Path::new("sub/nested.txt")
    );

    // And back: a fresh run seeded from what was saved sees the guest's file.
    let again = Run::new();
    again.fs().seed_from(&saved).unwrap();
    assert_eq!(read_tree_file(again.fs(), "out.txt"), b"NESTED");
    let root = Mount::mem(again.fs(), "/", true).unwrap().root();
    assert_eq!(
        root.stat_at("link", false).unwrap().kind,
        FileKind::SymbolicLink
    );
}
