//! Issue 16's filesystem differential test: the same random sequence of
//! path operations (open flags, symlinks relative and dangling, trailing
//! slashes, renames over files and directories, links, unlinks, rmdir,
//! set-size, seeks past the end, reads back) runs through the `fs-diff`
//! guest on Corral's in-memory tree (a scratch mount, via wasi-libc) and
//! here on a tmpfs directory (via glibc), with the very same code
//! (`guests/rust/fs-diff/src/ops.rs`). Every result and errno must match,
//! but for the few differences in [`allowed`], each with its reason.
//!
//! `PROPTEST_CASES` sets the number of sequences (64 by default; `make
//! fuzz` runs more).

mod common;

#[path = "../guests/rust/fs-diff/src/ops.rs"]
mod ops;

use std::ffi::CString;
use std::sync::OnceLock;
use std::time::Duration;

use common::{load, runtime, stdout_of};
use corral::vfs::{MountSource, MountSpec};
use corral::{ExitStatus, Program, Run, Runtime, Stdio, WorkerSpec};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

/// Every guest run ends by then, pass or fail.
const DEADLINE: Duration = Duration::from_secs(60);

/// Sequences per test run, unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 64;

/// One tokio runtime, Corral runtime and loaded guest for all cases.
fn shared() -> &'static (tokio::runtime::Runtime, Runtime, Program) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, Runtime, Program)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (rt, program) = tokio.block_on(async {
            let rt = runtime();
            let program = load(&rt, "fs-diff");
            (rt, program)
        });
        (tokio, rt, program)
    })
}

/// The results of `ops` through the guest, on a fresh scratch tree or
/// (`on_host`) on a fresh directory of the tmpfs mounted read-write.
fn on_corral(ops: &[String], on_host: bool) -> Vec<String> {
    let (tokio, rt, program) = shared();
    let host_dir = tmpfs_dir();
    let source = if on_host {
        MountSource::Host {
            dir: host_dir.path().to_path_buf(),
        }
    } else {
        MountSource::Scratch
    };
    tokio.block_on(async {
        let run = Run::new();
        let worker = rt.spawn(
            program,
            WorkerSpec::new("diff")
                .args(std::iter::once("/".to_string()).chain(ops.iter().cloned()))
                .stdio(Stdio::Capture)
                .mount(MountSpec {
                    source,
                    guest_path: "/".into(),
                    read_only: false,
                })
                .run(&run),
        );
        let status = tokio::time::timeout(DEADLINE, worker.join())
            .await
            .expect("the guest hung");
        let err = String::from_utf8_lossy(&worker.stderr()).into_owned();
        assert_eq!(status, ExitStatus::Exited { code: 0 }, "{err}");
        stdout_of(&worker).lines().map(str::to_string).collect()
    })
}

/// A fresh directory on a tmpfs (`/dev/shm`, else the temporary directory).
fn tmpfs_dir() -> tempfile::TempDir {
    let parent = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("corral-fs-diff")
        .tempdir_in(parent)
        .unwrap()
}

/// The results of `ops` on a fresh tmpfs directory, natively.
fn on_linux(ops: &[String]) -> Vec<String> {
    let dir = tmpfs_dir();
    let path = CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the descriptor is handed to `Ops`.
    let base = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(base >= 0, "open {}", dir.path().display());
    let mut native = ops::Ops::new(base);
    let results = ops.iter().map(|op| native.run(op)).collect();
    drop(native);
    // SAFETY: `base` is open and owned here.
    unsafe { libc::close(base) };
    results
}

/// Differences between Linux and Corral that the host cannot remove, each
/// with the reason: (operation, Linux's result, Corral's result).
fn allowed(op: &str, linux: &str, corral: &str) -> bool {
    let verb = op.split(' ').next().unwrap_or("");
    match (verb, linux, corral) {
        // lseek(SEEK_END) on a directory: tmpfs refuses it; wasi-libc never
        // asks the host, it adds the offset to the size `stat` gave.
        ("seekend", "err EINVAL", c) if c.starts_with("ok ") => true,
        _ => false,
    }
}

/// How many of `ops` can be compared, given Linux's results: all, or those
/// before a point where wasi-libc's own bookkeeping of a descriptor's
/// position leaves Linux's (the host is never asked; the same happens on a
/// host mount). From there, contents and positions differ.
/// - A read after a write (or a write after a read) on one descriptor with
///   no seek between: wasi-libc keeps a read stream and a write stream,
///   each at its own position, and does not move one when the other is used.
/// - After an `lseek` that failed: Linux keeps the position, wasi-libc
///   resets it to 0.
fn comparable(ops: &[String], linux: &[String]) -> usize {
    let mut last = [""; ops::SLOTS];
    for (i, op) in ops.iter().enumerate() {
        if op.starts_with("seek") && linux[i].starts_with("err") {
            return i + 1;
        }
        let words: Vec<&str> = op.split(' ').collect();
        let Some(slot) = words.get(1).and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        let slot = slot % ops::SLOTS;
        match words[0] {
            "read" | "write" => {
                if !last[slot].is_empty() && last[slot] != words[0] {
                    return i;
                }
                last[slot] = words[0];
            }
            "open" | "close" | "seek" | "seekend" => last[slot] = "",
            _ => {}
        }
    }
    ops.len()
}

/// A path below the directory: one to three of a few names, sometimes with
/// a trailing slash, so operations meet each other's files.
fn path() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(select(vec!["a", "b", "c"]), 1..=3),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(names, slash)| names.join("/") + if slash { "/" } else { "" })
}

/// A symlink target: a path as above (relative to the link's directory,
/// so often dangling), or `.`; never `..` or absolute, so the native side
/// cannot leave its directory.
fn target() -> impl Strategy<Value = String> {
    prop_oneof![4 => path(), 1 => Just(".".to_string())]
}

fn op() -> impl Strategy<Value = String> {
    let slot = 0..ops::SLOTS as u8;
    let flags = subsequence(vec!['r', 'w', 'b', 'c', 'x', 't', 'd', 'a', 'n'], 0..=5)
        .prop_map(|letters| letters.into_iter().collect::<String>() + "-");
    prop_oneof![
        6 => (slot.clone(), path(), flags).prop_map(|(s, p, f)| format!("open {s} {p} {f}")),
        1 => slot.clone().prop_map(|s| format!("close {s}")),
        3 => (slot.clone(), 0..64u32, any::<u8>()).prop_map(|(s, n, b)| format!("write {s} {n} {b}")),
        3 => (slot.clone(), 0..128u32).prop_map(|(s, n)| format!("read {s} {n}")),
        2 => (slot.clone(), 0..5000i64).prop_map(|(s, o)| format!("seek {s} {o}")),
        1 => (slot.clone(), -10..10i64).prop_map(|(s, o)| format!("seekend {s} {o}")),
        2 => (slot.clone(), 0..5000i64).prop_map(|(s, n)| format!("trunc {s} {n}")),
        1 => slot.prop_map(|s| format!("fstat {s}")),
        2 => path().prop_map(|p| format!("stat {p}")),
        2 => path().prop_map(|p| format!("lstat {p}")),
        4 => path().prop_map(|p| format!("mkdir {p}")),
        2 => path().prop_map(|p| format!("rmdir {p}")),
        2 => path().prop_map(|p| format!("unlink {p}")),
        3 => (path(), path()).prop_map(|(a, b)| format!("rename {a} {b}")),
        2 => (path(), path()).prop_map(|(a, b)| format!("link {a} {b}")),
        3 => (target(), path()).prop_map(|(t, p)| format!("symlink {t} {p}")),
        1 => path().prop_map(|p| format!("readlink {p}")),
        2 => prop_oneof![Just(".".to_string()), path()].prop_map(|p| format!("list {p}")),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// Runs `ops` natively and through the guest; the first difference not
/// [`allowed`], with the operations that led to it.
fn compare(ops: &[String], on_host: bool) -> Result<(), TestCaseError> {
    let linux = on_linux(ops);
    let corral = on_corral(ops, on_host);
    prop_assert_eq!(linux.len(), corral.len(), "{:?}", corral);
    for (i, op) in ops[..comparable(ops, &linux)].iter().enumerate() {
        if linux[i] != corral[i] && !allowed(op, &linux[i], &corral[i]) {
            let trail: Vec<String> = ops[..=i]
                .iter()
                .zip(&linux)
                .map(|(op, l)| format!("  {op:<28} -> {l}"))
                .collect();
            prop_assert!(
                false,
                "`{}`: Linux `{}`, Corral `{}`\n{}",
                op,
                linux[i],
                corral[i],
                trail.join("\n")
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn corrals_tree_answers_as_linux_does(ops in proptest::collection::vec(op(), 1..40)) {
        compare(&ops, false)?;
    }

    /// The same through a host-directory mount (cap-std over the tmpfs).
    #[test]
    fn a_host_mount_answers_as_linux_does(ops in proptest::collection::vec(op(), 1..40)) {
        compare(&ops, true)?;
    }
}
