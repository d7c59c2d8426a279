//! Tests of both backends through the public API, ending with a model
//! test against the real filesystem.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use super::*;

/// A root directory of one backend, and what keeps it alive.
struct Backend {
    name: &'static str,
    root: DirHandle,
    /// The tree, for `Mem` only.
    fs: Option<MemFs>,
    /// The host directory, for `Host` only.
    temp: Option<tempfile::TempDir>,
}

fn mem() -> Backend {
    let fs = MemFs::new(Limits::UNLIMITED);
    Backend {
        name: "mem",
        root: Mount::mem(&fs, "/", false).unwrap().root(),
        fs: Some(fs),
        temp: None,
    }
}

fn host() -> Backend {
    let temp = tempfile::tempdir().unwrap();
    Backend {
        name: "host",
        root: Mount::host_path(temp.path(), false).unwrap().root(),
        fs: None,
        temp: Some(temp),
    }
}

fn backends() -> [Backend; 2] {
    [mem(), host()]
}

impl Backend {
    /// The same storage, mounted again read-only.
    fn read_only(&self) -> DirHandle {
        match (&self.fs, &self.temp) {
            (Some(fs), _) => Mount::mem(fs, "/", true).unwrap().root(),
            (_, Some(temp)) => Mount::host_path(temp.path(), true).unwrap().root(),
            _ => unreachable!(),
        }
    }

    /// The same storage, mounted again (a different mount of it).
    fn remount(&self) -> DirHandle {
        match (&self.fs, &self.temp) {
            (Some(fs), _) => Mount::mem(fs, "/", false).unwrap().root(),
            (_, Some(temp)) => Mount::host_path(temp.path(), false).unwrap().root(),
            _ => unreachable!(),
        }
    }
}

fn reading() -> OpenOptions {
    OpenOptions {
        read: true,
        follow_symlinks: true,
        ..OpenOptions::default()
    }
}

fn writing() -> OpenOptions {
    OpenOptions {
        write: true,
        follow_symlinks: true,
        ..OpenOptions::default()
    }
}

fn creating() -> OpenOptions {
    OpenOptions {
        create: true,
        read: true,
        ..writing()
    }
}

fn file(dir: &DirHandle, path: &str, options: OpenOptions) -> FileHandle {
    match dir.open_at(path, options).unwrap() {
        Node::File(file) => file,
        Node::Dir(_) => panic!("{path} is a directory"),
    }
}

fn subdir(dir: &DirHandle, path: &str) -> DirHandle {
    match dir.open_at(path, reading()).unwrap() {
        Node::Dir(dir) => dir,
        Node::File(_) => panic!("{path} is a file"),
    }
}

fn put(dir: &DirHandle, path: &str, data: &[u8]) {
    let handle = file(
        dir,
        path,
        OpenOptions {
            truncate: true,
            ..creating()
        },
    );
    assert_eq!(handle.write_at(0, data).unwrap(), data.len());
}

fn get(dir: &DirHandle, path: &str) -> Vec<u8> {
    file(dir, path, reading()).read_at(0, u64::MAX).unwrap()
}

fn open_err(dir: &DirHandle, path: &str, options: OpenOptions) -> FsError {
    match dir.open_at(path, options) {
        Ok(_) => panic!("opening {path} with {options:?} succeeded"),
        Err(err) => err,
    }
}

fn kind(dir: &DirHandle, path: &str, follow: bool) -> Result<FileKind, FsError> {
    dir.stat_at(path, follow).map(|meta| meta.kind)
}

fn names(dir: &DirHandle) -> Vec<String> {
    dir.read_dir()
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

/// Runs `work` on another thread and fails if it does not finish in time
/// (a deadlock), rather than hanging the test run.
fn within(seconds: u64, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(seconds)) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no progress in {seconds} s: deadlock?"),
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<MemFs>();
    check::<DirHandle>();
    check::<FileHandle>();
    check::<Node>();
    check::<Mount>();
    check::<MountTable>();
}

mod files {
    use super::*;

    #[test]
    fn written_bytes_read_back_with_short_reads_at_the_end() {
        for b in backends() {
            put(&b.root, "f", b"hello world");
            let handle = file(&b.root, "f", reading());
            assert_eq!(handle.read_at(0, 5).unwrap(), b"hello", "{}", b.name);
            assert_eq!(handle.read_at(6, 100).unwrap(), b"world", "{}", b.name);
            assert_eq!(handle.read_at(11, 10).unwrap(), b"", "{}", b.name);
            assert_eq!(handle.read_at(500, 10).unwrap(), b"", "{}", b.name);
            assert_eq!(handle.stat().unwrap().size, 11, "{}", b.name);
            assert_eq!(
                handle.stat().unwrap().kind,
                FileKind::RegularFile,
                "{}",
                b.name
            );
        }
    }

    #[test]
    fn writing_past_the_end_fills_the_gap_with_zeros() {
        for b in backends() {
            let handle = file(&b.root, "f", creating());
            assert_eq!(handle.write_at(4, b"xy").unwrap(), 2, "{}", b.name);
            assert_eq!(handle.read_at(0, 100).unwrap(), b"\0\0\0\0xy", "{}", b.name);
            assert_eq!(handle.write_at(1, b"a").unwrap(), 1, "{}", b.name);
            assert_eq!(handle.read_at(0, 100).unwrap(), b"\0a\0\0xy", "{}", b.name);
            assert_eq!(handle.write_at(0, b"").unwrap(), 0, "{}", b.name);
        }
    }

    #[test]
    fn one_read_returns_at_most_16_mib() {
        let b = mem();
        let handle = file(&b.root, "big", creating());
        handle.set_size((16 << 20) + 10).unwrap();
        assert_eq!(handle.read_at(0, u64::MAX).unwrap().len(), 16 << 20);
        assert_eq!(handle.read_at(16 << 20, u64::MAX).unwrap().len(), 10);
    }

    #[test]
    fn set_size_truncates_and_extends() {
        for b in backends() {
            put(&b.root, "f", b"abcdef");
            let handle = file(
                &b.root,
                "f",
                OpenOptions {
                    read: true,
                    ..writing()
                },
            );
            handle.set_size(3).unwrap();
            assert_eq!(handle.read_at(0, 100).unwrap(), b"abc", "{}", b.name);
            handle.set_size(5).unwrap();
            assert_eq!(handle.read_at(0, 100).unwrap(), b"abc\0\0", "{}", b.name);
        }
    }

    #[test]
    fn open_with_truncate_empties_the_file() {
        for b in backends() {
            put(&b.root, "f", b"abcdef");
            file(
                &b.root,
                "f",
                OpenOptions {
                    truncate: true,
                    ..writing()
                },
            );
            assert_eq!(get(&b.root, "f"), b"", "{}", b.name);
        }
    }

    #[test]
    fn append_goes_to_the_end() {
        for b in backends() {
            put(&b.root, "f", b"ab");
            let handle = file(
                &b.root,
                "f",
                OpenOptions {
                    read: true,
                    ..writing()
                },
            );
            assert_eq!(handle.append(b"cd").unwrap(), 2, "{}", b.name);
            assert_eq!(handle.read_at(0, 100).unwrap(), b"abcd", "{}", b.name);
            let appender = file(
                &b.root,
                "f",
                OpenOptions {
                    append: true,
                    ..reading()
                },
            );
            assert!(appender.is_append() && appender.can_write(), "{}", b.name);
            appender.write_at(0, b"ef").unwrap();
            assert_eq!(get(&b.root, "f"), b"abcdef", "{}", b.name);
        }
    }

    #[test]
    fn handles_do_only_what_they_were_opened_for() {
        for b in backends() {
            put(&b.root, "f", b"data");
            let reader = file(&b.root, "f", reading());
            assert!(reader.can_read() && !reader.can_write(), "{}", b.name);
            assert_eq!(
                reader.write_at(0, b"x"),
                Err(FsError::BadDescriptor),
                "{}",
                b.name
            );
            assert_eq!(
                reader.append(b"x"),
                Err(FsError::BadDescriptor),
                "{}",
                b.name
            );
            // Linux's ftruncate on a descriptor not open for writing.
            assert_eq!(reader.set_size(0), Err(FsError::Invalid), "{}", b.name);
            let writer = file(&b.root, "f", writing());
            assert!(!writer.can_read() && writer.can_write(), "{}", b.name);
            assert_eq!(
                writer.read_at(0, 4),
                Err(FsError::BadDescriptor),
                "{}",
                b.name
            );
            assert_eq!(get(&b.root, "f"), b"data", "{}", b.name);
        }
    }

    #[test]
    fn open_reports_posix_errors() {
        for b in backends() {
            let root = &b.root;
            put(root, "f", b"");
            root.create_dir_at("d").unwrap();
            root.symlink_at("f", "lf").unwrap();
            let n = b.name;
            assert_eq!(
                open_err(root, "missing", reading()),
                FsError::NoEntry,
                "{n}"
            );
            assert_eq!(
                open_err(root, "missing/x", creating()),
                FsError::NoEntry,
                "{n}"
            );
            assert_eq!(
                open_err(root, "f/x", reading()),
                FsError::NotDirectory,
                "{n}"
            );
            assert_eq!(
                open_err(root, "f/", reading()),
                FsError::NotDirectory,
                "{n}"
            );
            let exclusive = OpenOptions {
                exclusive: true,
                ..creating()
            };
            assert_eq!(open_err(root, "f", exclusive), FsError::Exist, "{n}");
            assert_eq!(open_err(root, "lf", exclusive), FsError::Exist, "{n}");
            assert_eq!(open_err(root, "d", exclusive), FsError::Exist, "{n}");
            assert_eq!(open_err(root, "d", writing()), FsError::IsDirectory, "{n}");
            assert_eq!(open_err(root, "d", creating()), FsError::IsDirectory, "{n}");
            assert_eq!(
                open_err(root, "new/", creating()),
                FsError::IsDirectory,
                "{n}"
            );
            let directory = OpenOptions {
                directory: true,
                ..reading()
            };
            assert_eq!(open_err(root, "f", directory), FsError::NotDirectory, "{n}");
            let bad = OpenOptions {
                directory: true,
                create: true,
                ..reading()
            };
            assert_eq!(open_err(root, "d", bad), FsError::Invalid, "{n}");
            // As Linux: O_DIRECTORY|O_TRUNC looks the path up (found by
            // tests/fs_diff.rs), and never truncates a file.
            let truncating = OpenOptions {
                directory: true,
                truncate: true,
                ..reading()
            };
            assert_eq!(open_err(root, "d", truncating), FsError::IsDirectory, "{n}");
            put(root, "kept", b"kept");
            assert_eq!(
                open_err(root, "kept", truncating),
                FsError::NotDirectory,
                "{n}"
            );
            assert_eq!(get(root, "kept"), b"kept", "{n}");
            assert_eq!(open_err(root, "none", truncating), FsError::NoEntry, "{n}");
            let no_follow = OpenOptions {
                follow_symlinks: false,
                ..reading()
            };
            assert_eq!(open_err(root, "lf", no_follow), FsError::Loop, "{n}");
            // Linux checks O_DIRECTORY first (found by tests/fs_diff.rs).
            let no_follow_dir = OpenOptions {
                directory: true,
                ..no_follow
            };
            assert_eq!(
                open_err(root, "lf", no_follow_dir),
                FsError::NotDirectory,
                "{n}"
            );
            // A trailing slash follows the symlink: a loop stays a loop.
            root.symlink_at("self", "self").unwrap();
            assert_eq!(open_err(root, "self/", no_follow_dir), FsError::Loop, "{n}");
            assert!(
                matches!(root.open_at("d", directory), Ok(Node::Dir(_))),
                "{n}"
            );
            assert!(
                matches!(root.open_at("d/", no_follow), Ok(Node::Dir(_))),
                "{n}"
            );
            assert!(
                matches!(root.open_at("lf", reading()), Ok(Node::File(_))),
                "{n}"
            );
        }
    }

    #[test]
    fn create_through_a_dangling_symlink_creates_its_target() {
        for b in backends() {
            b.root.symlink_at("target", "link").unwrap();
            put(&b.root, "link", b"via link");
            assert_eq!(get(&b.root, "target"), b"via link", "{}", b.name);
        }
    }

    #[test]
    fn an_unlinked_open_file_stays_readable_and_writable() {
        for b in backends() {
            put(&b.root, "f", b"before");
            let handle = file(
                &b.root,
                "f",
                OpenOptions {
                    read: true,
                    ..writing()
                },
            );
            b.root.unlink_file_at("f").unwrap();
            assert_eq!(
                kind(&b.root, "f", false),
                Err(FsError::NoEntry),
                "{}",
                b.name
            );
            assert_eq!(handle.read_at(0, 100).unwrap(), b"before", "{}", b.name);
            handle.write_at(6, b" and after").unwrap();
            assert_eq!(
                handle.read_at(0, 100).unwrap(),
                b"before and after",
                "{}",
                b.name
            );
            assert_eq!(handle.stat().unwrap().nlink, 0, "{}", b.name);
        }
    }

    #[test]
    fn an_unlinked_file_keeps_its_bytes_counted_until_the_last_handle_goes() {
        let b = mem();
        let fs = b.fs.as_ref().unwrap();
        put(&b.root, "f", &[7; 1000]);
        let handle = file(&b.root, "f", reading());
        let clone = handle.clone();
        b.root.unlink_file_at("f").unwrap();
        assert_eq!(
            fs.usage(),
            Usage {
                bytes: 1000,
                inodes: 2
            }
        );
        drop(handle);
        assert_eq!(clone.read_at(998, 10).unwrap(), [7, 7]);
        drop(clone);
        assert_eq!(
            fs.usage(),
            Usage {
                bytes: 0,
                inodes: 1
            }
        );
    }
}

mod directories {
    use super::*;

    #[test]
    fn create_dir_rules() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.create_dir_at("d").unwrap();
            root.create_dir_at("e/").unwrap();
            put(root, "f", b"");
            root.symlink_at("nowhere", "dangling").unwrap();
            assert_eq!(kind(root, "e", true), Ok(FileKind::Directory), "{n}");
            assert_eq!(root.create_dir_at("d"), Err(FsError::Exist), "{n}");
            assert_eq!(root.create_dir_at("f"), Err(FsError::Exist), "{n}");
            assert_eq!(root.create_dir_at("dangling"), Err(FsError::Exist), "{n}");
            assert_eq!(root.create_dir_at("."), Err(FsError::Exist), "{n}");
            assert_eq!(root.create_dir_at("d/.."), Err(FsError::Exist), "{n}");
            assert_eq!(root.create_dir_at("x/y"), Err(FsError::NoEntry), "{n}");
            assert_eq!(root.create_dir_at("f/y"), Err(FsError::NotDirectory), "{n}");
        }
    }

    #[test]
    fn remove_dir_rules() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.create_dir_at("d").unwrap();
            root.create_dir_at("full").unwrap();
            put(root, "full/f", b"");
            put(root, "f", b"");
            root.symlink_at("d", "ld").unwrap();
            assert_eq!(root.remove_dir_at("full"), Err(FsError::NotEmpty), "{n}");
            assert_eq!(root.remove_dir_at("full/.."), Err(FsError::NotEmpty), "{n}");
            assert_eq!(root.remove_dir_at("f"), Err(FsError::NotDirectory), "{n}");
            assert_eq!(root.remove_dir_at("ld"), Err(FsError::NotDirectory), "{n}");
            assert_eq!(root.remove_dir_at("ld/"), Err(FsError::NotDirectory), "{n}");
            assert_eq!(root.remove_dir_at("."), Err(FsError::Invalid), "{n}");
            assert_eq!(root.remove_dir_at("d/."), Err(FsError::Invalid), "{n}");
            assert_eq!(root.remove_dir_at("missing"), Err(FsError::NoEntry), "{n}");
            root.remove_dir_at("d/").unwrap();
            assert_eq!(kind(root, "d", false), Err(FsError::NoEntry), "{n}");
        }
    }

    #[test]
    fn a_removed_directory_accepts_no_new_entries() {
        for b in backends() {
            b.root.create_dir_at("d").unwrap();
            let d = subdir(&b.root, "d");
            b.root.remove_dir_at("d").unwrap();
            assert_eq!(d.create_dir_at("x"), Err(FsError::NoEntry), "{}", b.name);
            assert_eq!(
                open_err(&d, "x", creating()),
                FsError::NoEntry,
                "{}",
                b.name
            );
            assert_eq!(d.symlink_at("a", "x"), Err(FsError::NoEntry), "{}", b.name);
            assert!(d.read_dir().unwrap().is_empty(), "{}", b.name);
        }
    }

    #[test]
    fn unlink_rules() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.create_dir_at("d").unwrap();
            put(root, "f", b"kept");
            root.symlink_at("f", "lf").unwrap();
            root.symlink_at("d", "ld").unwrap();
            assert_eq!(root.unlink_file_at("d"), Err(FsError::IsDirectory), "{n}");
            assert_eq!(root.unlink_file_at("d/"), Err(FsError::IsDirectory), "{n}");
            assert_eq!(root.unlink_file_at("."), Err(FsError::IsDirectory), "{n}");
            assert_eq!(root.unlink_file_at("f/"), Err(FsError::NotDirectory), "{n}");
            assert_eq!(
                root.unlink_file_at("ld/"),
                Err(FsError::NotDirectory),
                "{n}"
            );
            assert_eq!(root.unlink_file_at("missing"), Err(FsError::NoEntry), "{n}");
            root.unlink_file_at("lf").unwrap();
            root.unlink_file_at("ld").unwrap();
            assert_eq!(get(root, "f"), b"kept", "{n}");
            assert_eq!(kind(root, "d", false), Ok(FileKind::Directory), "{n}");
        }
    }

    #[test]
    fn read_dir_lists_names_and_kinds_sorted_without_dots() {
        for b in backends() {
            b.root.create_dir_at("b").unwrap();
            put(&b.root, "c", b"");
            b.root.symlink_at("c", "a").unwrap();
            let entries = b.root.read_dir().unwrap();
            let expected = [
                ("a", FileKind::SymbolicLink),
                ("b", FileKind::Directory),
                ("c", FileKind::RegularFile),
            ];
            let listed: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
            assert_eq!(listed, expected, "{}", b.name);
            assert!(
                subdir(&b.root, "b").read_dir().unwrap().is_empty(),
                "{}",
                b.name
            );
        }
    }

    #[test]
    fn directory_link_counts_follow_subdirectories() {
        for b in backends() {
            let root = &b.root;
            root.create_dir_at("d").unwrap();
            root.create_dir_at("d/x").unwrap();
            root.create_dir_at("d/y").unwrap();
            put(root, "d/f", b"");
            assert_eq!(root.stat_at("d", false).unwrap().nlink, 4, "{}", b.name);
            root.rename_at("d/x", root, "x").unwrap();
            assert_eq!(root.stat_at("d", false).unwrap().nlink, 3, "{}", b.name);
            root.remove_dir_at("d/y").unwrap();
            assert_eq!(root.stat_at("d", false).unwrap().nlink, 2, "{}", b.name);
        }
    }
}

mod listings {
    use super::*;

    fn unlimited() -> Arc<ByteBudget> {
        Arc::new(ByteBudget::new(u64::MAX))
    }

    fn listed(dir: &DirHandle) -> Vec<String> {
        dir.list(&unlimited())
            .unwrap()
            .map(|entry| entry.name)
            .collect()
    }

    #[test]
    fn a_listing_reads_every_entry_in_order_batch_by_batch() {
        for b in backends() {
            for n in ["a", "b"] {
                put(&b.root, n, b"");
            }
            assert_eq!(listed(&b.root), names(&b.root), "{}", b.name);
        }
        let b = mem();
        for n in 0..1000 {
            put(&b.root, &format!("{n:04}"), b"");
        }
        let all = listed(&b.root);
        assert_eq!(all.len(), 1000);
        assert!(all.is_sorted());
        let mut listing = b.root.list(&unlimited()).unwrap();
        let first: Vec<_> = listing.by_ref().take(100).map(|e| e.name).collect();
        assert_eq!(first.last().unwrap(), "0099");
        // Names after the cursor that appear meanwhile are seen, as readdir may.
        put(&b.root, "zzz", b"");
        b.root.unlink_file_at("0999").unwrap();
        let rest: Vec<_> = listing.map(|e| e.name).collect();
        assert_eq!(rest.first().unwrap(), "0100");
        assert_eq!(rest.last().unwrap(), "zzz");
        assert_eq!(rest.len(), 900);
    }

    /// A host directory is listed whole: each open listing holds its names
    /// against the worker's budget until it is dropped.
    #[test]
    fn a_host_listing_is_charged_to_the_budget_while_it_lives() {
        let b = host();
        for n in 0..100 {
            put(&b.root, &format!("{n:0100}"), b"");
        }
        let budget = Arc::new(ByteBudget::new(64 << 10));
        let mut held = Vec::new();
        let refused = loop {
            match b.root.list(&budget) {
                Ok(listing) => held.push(listing),
                Err(e) => break e,
            }
            assert!(held.len() < 1000, "the budget never ran out");
        };
        assert_eq!(refused, FsError::InsufficientMemory);
        let per_listing = budget.used() / held.len() as u64;
        assert!(per_listing >= 100 * 100, "{per_listing} bytes a listing");
        assert_eq!(held.len() as u64, (64 << 10) / per_listing);
        drop(held);
        assert_eq!(budget.used(), 0, "dropped listings give their bytes back");
        let mem = mem();
        let none = Arc::new(ByteBudget::new(0));
        assert!(
            mem.root.list(&none).is_ok(),
            "a tree's listing holds a batch, uncharged"
        );
    }
}

mod renames_and_links {
    use super::*;

    #[test]
    fn rename_replaces_a_file() {
        for b in backends() {
            put(&b.root, "old", b"new contents");
            put(&b.root, "target", b"old contents");
            let still_open = file(&b.root, "target", reading());
            b.root.rename_at("old", &b.root, "target").unwrap();
            assert_eq!(get(&b.root, "target"), b"new contents", "{}", b.name);
            assert_eq!(
                kind(&b.root, "old", false),
                Err(FsError::NoEntry),
                "{}",
                b.name
            );
            assert_eq!(
                still_open.read_at(0, 100).unwrap(),
                b"old contents",
                "{}",
                b.name
            );
            assert_eq!(still_open.stat().unwrap().nlink, 0, "{}", b.name);
        }
    }

    #[test]
    fn rename_follows_posix_rules_for_directories() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            for dir in ["a", "a/sub", "empty", "full"] {
                root.create_dir_at(dir).unwrap();
            }
            put(root, "full/f", b"");
            put(root, "f", b"");
            assert_eq!(
                root.rename_at("a", root, "full"),
                Err(FsError::NotEmpty),
                "{n}"
            );
            assert_eq!(
                root.rename_at("a", root, "f"),
                Err(FsError::NotDirectory),
                "{n}"
            );
            assert_eq!(
                root.rename_at("f", root, "empty"),
                Err(FsError::IsDirectory),
                "{n}"
            );
            assert_eq!(
                root.rename_at("a", root, "a/sub/x"),
                Err(FsError::Invalid),
                "{n}"
            );
            assert_eq!(
                root.rename_at("a", root, "a/x"),
                Err(FsError::Invalid),
                "{n}"
            );
            assert_eq!(
                root.rename_at("a/sub", root, "a"),
                Err(FsError::NotEmpty),
                "{n}"
            );
            assert_eq!(root.rename_at(".", root, "x"), Err(FsError::Busy), "{n}");
            assert_eq!(root.rename_at("f", root, "a/.."), Err(FsError::Busy), "{n}");
            assert_eq!(
                root.rename_at("f", root, "x/"),
                Err(FsError::NotDirectory),
                "{n}"
            );
            assert_eq!(
                root.rename_at("missing", root, "x"),
                Err(FsError::NoEntry),
                "{n}"
            );
            assert_eq!(
                root.rename_at("f", root, "missing/x"),
                Err(FsError::NoEntry),
                "{n}"
            );
            root.rename_at("a", root, "empty").unwrap();
            assert_eq!(
                kind(root, "empty/sub", false),
                Ok(FileKind::Directory),
                "{n}"
            );
            root.rename_at("empty/", root, "moved/").unwrap();
            assert_eq!(names(root), ["f", "full", "moved"], "{n}");
        }
    }

    #[test]
    fn rename_between_two_names_of_one_file_does_nothing() {
        for b in backends() {
            put(&b.root, "f", b"x");
            b.root.link_at("f", &b.root, "g").unwrap();
            b.root.rename_at("f", &b.root, "g").unwrap();
            assert_eq!(names(&b.root), ["f", "g"], "{}", b.name);
            b.root.rename_at("f", &b.root, "f").unwrap();
            assert_eq!(names(&b.root), ["f", "g"], "{}", b.name);
        }
    }

    #[test]
    fn rename_between_directory_handles_of_one_mount() {
        for b in backends() {
            b.root.create_dir_at("a").unwrap();
            b.root.create_dir_at("b").unwrap();
            put(&b.root, "a/f", b"moving");
            let (a, other) = (subdir(&b.root, "a"), subdir(&b.root, "b"));
            a.rename_at("f", &other, "g").unwrap();
            assert_eq!(get(&other, "g"), b"moving", "{}", b.name);
            other.link_at("g", &a, "h").unwrap();
            assert_eq!(get(&a, "h"), b"moving", "{}", b.name);
        }
    }

    #[test]
    fn renames_and_links_between_mounts_are_cross_device() {
        for b in backends() {
            put(&b.root, "f", b"");
            let other = b.remount();
            assert_eq!(
                b.root.rename_at("f", &other, "g"),
                Err(FsError::CrossDevice),
                "{}",
                b.name
            );
            assert_eq!(
                b.root.link_at("f", &other, "g"),
                Err(FsError::CrossDevice),
                "{}",
                b.name
            );
        }
        let (m, h) = (mem(), host());
        put(&m.root, "f", b"");
        assert_eq!(
            m.root.rename_at("f", &h.root, "f"),
            Err(FsError::CrossDevice)
        );
        assert_eq!(h.root.link_at("f", &m.root, "f"), Err(FsError::CrossDevice));
    }

    #[test]
    fn hard_links_share_one_file() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            put(root, "f", b"one");
            root.create_dir_at("d").unwrap();
            root.link_at("f", root, "d/g").unwrap();
            assert_eq!(root.stat_at("f", false).unwrap().nlink, 2, "{n}");
            put(root, "d/g", b"two");
            assert_eq!(get(root, "f"), b"two", "{n}");
            let (f, g) = (file(root, "f", reading()), file(root, "d/g", reading()));
            assert!(f.is_same_object(&g), "{n}");
            assert_eq!(
                root.metadata_hash_at("f", false),
                root.metadata_hash_at("d/g", false)
            );
            assert_eq!(
                root.link_at("d", root, "e"),
                Err(FsError::NotPermitted),
                "{n}"
            );
            assert_eq!(root.link_at("f", root, "d/g"), Err(FsError::Exist), "{n}");
            assert_eq!(root.link_at("f", root, "d/."), Err(FsError::Exist), "{n}");
            assert_eq!(
                root.link_at("missing", root, "x"),
                Err(FsError::NoEntry),
                "{n}"
            );
            assert_eq!(
                root.link_at("f/", root, "x"),
                Err(FsError::NotDirectory),
                "{n}"
            );
            root.unlink_file_at("f").unwrap();
            assert_eq!(root.stat_at("d/g", false).unwrap().nlink, 1, "{n}");
        }
    }
}

mod symlinks {
    use super::*;

    #[test]
    fn symlinks_resolve_from_their_own_directory() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.create_dir_at("d").unwrap();
            put(root, "d/target", b"in d");
            put(root, "top", b"at top");
            root.symlink_at("target", "d/near").unwrap();
            root.symlink_at("../top", "d/up").unwrap();
            root.symlink_at("d/near", "chain").unwrap();
            root.symlink_at("d", "ld").unwrap();
            assert_eq!(get(root, "d/near"), b"in d", "{n}");
            assert_eq!(get(root, "d/up"), b"at top", "{n}");
            assert_eq!(get(root, "chain"), b"in d", "{n}");
            assert_eq!(get(root, "ld/target"), b"in d", "{n}");
            assert_eq!(root.readlink_at("d/up").unwrap(), "../top", "{n}");
            assert_eq!(kind(root, "ld", false), Ok(FileKind::SymbolicLink), "{n}");
            assert_eq!(kind(root, "ld", true), Ok(FileKind::Directory), "{n}");
            assert_eq!(kind(root, "ld/", false), Ok(FileKind::Directory), "{n}");
            assert_eq!(root.stat_at("d/up", false).unwrap().size, 6, "{n}");
        }
    }

    #[test]
    fn symlink_rules() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            put(root, "f", b"");
            root.symlink_at("nowhere", "dangling").unwrap();
            assert_eq!(kind(root, "dangling", true), Err(FsError::NoEntry), "{n}");
            assert_eq!(
                kind(root, "dangling", false),
                Ok(FileKind::SymbolicLink),
                "{n}"
            );
            assert_eq!(root.symlink_at("x", "f"), Err(FsError::Exist), "{n}");
            assert_eq!(root.symlink_at("x", "new/"), Err(FsError::NoEntry), "{n}");
            assert_eq!(root.symlink_at("x", "."), Err(FsError::Exist), "{n}");
            assert_eq!(root.symlink_at("", "empty"), Err(FsError::NoEntry), "{n}");
            assert_eq!(
                root.symlink_at("/etc", "abs"),
                Err(FsError::NotPermitted),
                "{n}"
            );
            assert_eq!(root.symlink_at("a\0b", "nul"), Err(FsError::Invalid), "{n}");
            assert_eq!(root.readlink_at("f"), Err(FsError::Invalid), "{n}");
            assert_eq!(root.readlink_at("missing"), Err(FsError::NoEntry), "{n}");
        }
    }

    #[test]
    fn loops_and_long_chains_fail_with_loop() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.symlink_at("l2", "l1").unwrap();
            root.symlink_at("l1", "l2").unwrap();
            root.symlink_at("self/x", "self").unwrap();
            assert_eq!(kind(root, "l1", true), Err(FsError::Loop), "{n}");
            assert_eq!(kind(root, "self", true), Err(FsError::Loop), "{n}");
            assert_eq!(open_err(root, "l1", creating()), FsError::Loop, "{n}");
            assert_eq!(root.create_dir_at("l1/x"), Err(FsError::Loop), "{n}");
            assert_eq!(kind(root, "l1", false), Ok(FileKind::SymbolicLink), "{n}");
        }
        // The tree follows at most 40 links in one resolution, as Linux does.
        let b = mem();
        put(&b.root, "link0", b"end");
        for i in 1..=41 {
            b.root
                .symlink_at(&format!("link{}", i - 1), &format!("link{i}"))
                .unwrap();
        }
        assert_eq!(get(&b.root, "link40"), b"end");
        assert_eq!(kind(&b.root, "link41", true), Err(FsError::Loop));
    }
}

mod escapes {
    use super::*;

    /// Every operation on `path` from `dir` must fail with `NotPermitted`.
    fn assert_all_refused(dir: &DirHandle, path: &str, context: &str) {
        let refused = Err(FsError::NotPermitted);
        assert_eq!(
            dir.stat_at(path, true).map(drop),
            refused,
            "{context}: stat {path}"
        );
        assert_eq!(
            dir.open_at(path, reading()).map(drop),
            refused,
            "{context}: open {path}"
        );
        assert_eq!(
            dir.open_at(path, creating()).map(drop),
            refused,
            "{context}: create {path}"
        );
        assert_eq!(dir.create_dir_at(path), refused, "{context}: mkdir {path}");
        assert_eq!(
            dir.symlink_at("x", path),
            refused,
            "{context}: symlink {path}"
        );
        assert_eq!(
            dir.link_at("inside", dir, path),
            refused,
            "{context}: link {path}"
        );
        assert_eq!(
            dir.rename_at("inside", dir, path),
            refused,
            "{context}: rename {path}"
        );
        assert_eq!(
            dir.readlink_at(path).map(drop),
            refused,
            "{context}: readlink {path}"
        );
        let now = NewTimes {
            atime: NewTimestamp::Now,
            mtime: NewTimestamp::Now,
        };
        assert_eq!(
            dir.set_times_at(path, true, now),
            refused,
            "{context}: set_times {path}"
        );
    }

    const ESCAPES: [&str; 7] = [
        "..",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "/",
        "a/../..",
        "./../x",
    ];

    #[test]
    fn no_path_leads_above_the_mount_root() {
        for b in backends() {
            b.root.create_dir_at("a").unwrap();
            put(&b.root, "inside", b"");
            for path in ESCAPES {
                assert_all_refused(&b.root, path, b.name);
            }
            assert_eq!(
                b.root.remove_dir_at(".."),
                Err(FsError::NotPermitted),
                "{}",
                b.name
            );
            assert_eq!(
                b.root.unlink_file_at("../x"),
                Err(FsError::NotPermitted),
                "{}",
                b.name
            );
            assert_eq!(
                b.root.stat_at("a/..", true).unwrap().kind,
                FileKind::Directory
            );
        }
    }

    #[test]
    fn no_path_leads_above_a_directory_handle() {
        for b in backends() {
            b.root.create_dir_at("sub").unwrap();
            b.root.create_dir_at("sub/a").unwrap();
            put(&b.root, "sub/inside", b"");
            put(&b.root, "secret", b"");
            let sub = subdir(&b.root, "sub");
            for path in ESCAPES.iter().chain(&["../secret"]) {
                assert_all_refused(&sub, path, b.name);
            }
        }
    }

    #[test]
    fn no_symlink_leads_out() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            root.create_dir_at("d").unwrap();
            root.symlink_at("..", "up").unwrap();
            root.symlink_at("../..", "d/up2").unwrap();
            root.symlink_at("d/../..", "sneaky").unwrap();
            for link in ["up", "up/x", "d/up2", "d/up2/etc", "sneaky"] {
                assert_eq!(
                    kind(root, link, true),
                    Err(FsError::NotPermitted),
                    "{n}: {link}"
                );
                let err = open_err(root, link, creating());
                assert_eq!(err, FsError::NotPermitted, "{n}: create {link}");
            }
            assert_eq!(
                root.create_dir_at("up/x"),
                Err(FsError::NotPermitted),
                "{n}"
            );
        }
    }

    #[test]
    fn absolute_symlinks_are_never_followed() {
        let m = mem();
        let h = host();
        // Neither backend creates them, but both can meet them: seeded from
        // the host, or made on the host by someone else.
        let seed = tempfile::tempdir().unwrap();
        for base in [seed.path(), h.temp.as_ref().unwrap().path()] {
            std::os::unix::fs::symlink("/", base.join("root")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", base.join("passwd")).unwrap();
        }
        m.fs.as_ref().unwrap().seed_from(seed.path()).unwrap();
        for b in [m, h] {
            for link in ["root", "root/etc/passwd", "passwd"] {
                assert_eq!(
                    kind(&b.root, link, true),
                    Err(FsError::NotPermitted),
                    "{link}"
                );
                assert_eq!(
                    open_err(&b.root, link, reading()),
                    FsError::NotPermitted,
                    "{link}"
                );
            }
            assert_eq!(b.root.readlink_at("root").unwrap(), "/", "{}", b.name);
            assert_eq!(kind(&b.root, "root", false), Ok(FileKind::SymbolicLink));
        }
    }

    #[test]
    fn a_subtree_mount_stays_inside_its_subtree() {
        let fs = MemFs::new(Limits::UNLIMITED);
        let whole = Mount::mem(&fs, "/", false).unwrap().root();
        whole.create_dir_at("shared").unwrap();
        whole.create_dir_at("shared/jobs").unwrap();
        whole.create_dir_at("shared/jobs/a").unwrap();
        put(&whole, "shared/secret", b"hidden");
        put(&whole, "shared/jobs/inside", b"visible");
        whole.symlink_at("../secret", "shared/jobs/link").unwrap();
        let jobs = Mount::mem(&fs, "/shared/jobs", false).unwrap().root();
        assert_eq!(get(&jobs, "inside"), b"visible");
        assert_eq!(get(&whole, "shared/jobs/link"), b"hidden");
        for path in ESCAPES.iter().chain(&["../secret"]) {
            assert_all_refused(&jobs, path, "subtree");
        }
        assert_eq!(kind(&jobs, "link", true), Err(FsError::NotPermitted));
        assert_eq!(open_err(&jobs, "link", reading()), FsError::NotPermitted);
        assert_eq!(open_err(&jobs, "link", creating()), FsError::NotPermitted);
        assert_eq!(
            jobs.rename_at("inside", &whole, "stolen"),
            Err(FsError::CrossDevice)
        );
        assert_eq!(names(&jobs), ["a", "inside", "link"]);
        assert!(matches!(
            Mount::mem(&fs, "/missing", false),
            Err(FsError::NoEntry)
        ));
        assert!(matches!(
            Mount::mem(&fs, "shared/secret", false),
            Err(FsError::NotDirectory)
        ));
    }

    #[test]
    fn a_directory_moved_out_of_a_subtree_does_not_lead_back_up() {
        let fs = MemFs::new(Limits::UNLIMITED);
        let whole = Mount::mem(&fs, "/", false).unwrap().root();
        whole.create_dir_at("jobs").unwrap();
        whole.create_dir_at("jobs/work").unwrap();
        put(&whole, "secret", b"");
        let jobs = Mount::mem(&fs, "/jobs", false).unwrap().root();
        let work = subdir(&jobs, "work");
        // Another worker moves the directory to the top of the tree.
        whole.rename_at("jobs/work", &whole, "work").unwrap();
        assert_eq!(
            work.stat_at("../secret", true).map(drop),
            Err(FsError::NotPermitted)
        );
    }

    #[test]
    fn long_names_and_bad_bytes_are_refused() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            let longest = "x".repeat(255);
            root.create_dir_at(&longest).unwrap();
            assert_eq!(
                root.create_dir_at(&"x".repeat(256)),
                Err(FsError::NameTooLong),
                "{n}"
            );
            let long_target = "y".repeat(256);
            assert_eq!(
                root.symlink_at(&long_target, "l"),
                Err(FsError::NameTooLong),
                "{n}"
            );
            let long_path = vec!["a"; 2049].join("/");
            assert_eq!(
                kind(root, &long_path, true),
                Err(FsError::NameTooLong),
                "{n}"
            );
            assert_eq!(root.create_dir_at("a\0b"), Err(FsError::Invalid), "{n}");
            assert_eq!(kind(root, "", true), Err(FsError::NoEntry), "{n}");
        }
    }
}

mod permissions {
    use super::*;

    #[test]
    fn a_read_only_mount_refuses_every_change() {
        for b in backends() {
            b.root.create_dir_at("d").unwrap();
            put(&b.root, "f", b"data");
            let ro = b.read_only();
            let (n, denied) = (b.name, Err(FsError::ReadOnly));
            let now = NewTimes {
                atime: NewTimestamp::Now,
                mtime: NewTimestamp::Now,
            };
            assert!(ro.is_read_only(), "{n}");
            assert_eq!(get(&ro, "f"), b"data", "{n}");
            assert_eq!(names(&ro), ["d", "f"], "{n}");
            for options in [
                writing(),
                creating(),
                OpenOptions {
                    append: true,
                    ..reading()
                },
            ] {
                assert_eq!(open_err(&ro, "f", options), FsError::ReadOnly, "{n}");
            }
            let truncate = OpenOptions {
                truncate: true,
                ..reading()
            };
            assert_eq!(open_err(&ro, "f", truncate), FsError::ReadOnly, "{n}");
            assert_eq!(ro.create_dir_at("x"), denied, "{n}");
            assert_eq!(ro.remove_dir_at("d"), denied, "{n}");
            assert_eq!(ro.unlink_file_at("f"), denied, "{n}");
            assert_eq!(ro.rename_at("f", &ro, "g"), denied, "{n}");
            assert_eq!(ro.link_at("f", &ro, "g"), denied, "{n}");
            assert_eq!(ro.symlink_at("f", "l"), denied, "{n}");
            assert_eq!(ro.set_times_at("f", true, now), denied, "{n}");
            assert_eq!(ro.set_times(now), denied, "{n}");
            let handle = file(&ro, "f", reading());
            assert_eq!(handle.set_times(now), denied, "{n}");
            assert_eq!(handle.write_at(0, b"x"), Err(FsError::BadDescriptor), "{n}");
            let sub = subdir(&ro, "d");
            assert_eq!(sub.create_dir_at("x"), denied, "{n}");
            assert_eq!(
                ro.stat_at("../x", true).map(drop),
                Err(FsError::NotPermitted),
                "{n}"
            );
            assert_eq!(get(&b.root, "f"), b"data", "{n}");
        }
    }
}

mod metadata {
    use super::*;

    fn times(meta: &Metadata) -> (SystemTime, SystemTime, SystemTime) {
        (
            meta.atime.unwrap(),
            meta.mtime.unwrap(),
            meta.ctime.unwrap(),
        )
    }

    fn tick() {
        thread::sleep(Duration::from_millis(2));
    }

    #[test]
    fn set_times_sets_what_it_is_told() {
        let (a, m) = (
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_100_000_000),
        );
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            put(root, "f", b"");
            root.symlink_at("f", "l").unwrap();
            let (at, to) = (NewTimestamp::Timestamp(a), NewTimestamp::Timestamp(m));
            let times = |atime, mtime| NewTimes { atime, mtime };
            root.set_times_at("f", true, times(at, to)).unwrap();
            let meta = root.stat_at("f", true).unwrap();
            assert_eq!((meta.atime, meta.mtime), (Some(a), Some(m)), "{n}");
            let handle = file(root, "f", reading());
            handle
                .set_times(times(NewTimestamp::NoChange, NewTimestamp::Now))
                .unwrap();
            let meta = handle.stat().unwrap();
            assert_eq!(meta.atime, Some(a), "{n}");
            assert!(meta.mtime.unwrap() > m, "{n}");
            root.set_times_at("l", false, times(at, at)).unwrap();
            assert_eq!(root.stat_at("l", false).unwrap().mtime, Some(a), "{n}");
            assert_ne!(root.stat_at("f", true).unwrap().mtime, Some(a), "{n}");
            root.create_dir_at("d").unwrap();
            let d = subdir(root, "d");
            d.set_times(times(to, to)).unwrap();
            assert_eq!(root.stat_at("d", true).unwrap().mtime, Some(m), "{n}");
            assert_eq!(Node::Dir(d).stat().unwrap().mtime, Some(m), "{n}");
        }
    }

    #[test]
    fn tree_timestamps_change_as_posix_says() {
        let b = mem();
        let root = &b.root;
        root.create_dir_at("d").unwrap();
        let handle = file(root, "d/f", creating());
        let (_, dir_mtime, _) = times(&root.stat_at("d", true).unwrap());
        let (atime, mtime, ctime) = times(&handle.stat().unwrap());
        tick();
        handle.read_at(0, 10).unwrap();
        assert_eq!(
            times(&handle.stat().unwrap()),
            (atime, mtime, ctime),
            "reads change nothing"
        );
        handle.write_at(0, b"x").unwrap();
        let (_, written, changed) = times(&handle.stat().unwrap());
        assert!(
            written > mtime && changed == written,
            "a write sets mtime and ctime"
        );
        tick();
        root.link_at("d/f", root, "g").unwrap();
        let (_, mtime_after_link, ctime_after_link) = times(&handle.stat().unwrap());
        assert!(
            mtime_after_link == written && ctime_after_link > changed,
            "a link sets ctime"
        );
        let (_, dir_mtime_after, dir_ctime_after) = times(&root.stat_at("d", true).unwrap());
        assert_eq!(
            dir_mtime_after, dir_mtime,
            "a link elsewhere leaves d alone"
        );
        assert!(dir_ctime_after >= dir_mtime);
        tick();
        root.rename_at("d/f", root, "d/h").unwrap();
        let (_, dir_mtime_renamed, _) = times(&root.stat_at("d", true).unwrap());
        assert!(
            dir_mtime_renamed > dir_mtime,
            "a rename changes the directory"
        );
        assert!(
            times(&handle.stat().unwrap()).2 > ctime_after_link,
            "and the file's ctime"
        );
        tick();
        root.unlink_file_at("d/h").unwrap();
        assert!(times(&root.stat_at("d", true).unwrap()).1 > dir_mtime_renamed);
        assert_eq!(handle.stat().unwrap().nlink, 1);
    }

    #[test]
    fn identity_and_metadata_hash() {
        for b in backends() {
            let (root, n) = (&b.root, b.name);
            put(root, "f", b"1");
            put(root, "g", b"1");
            let (f, g) = (file(root, "f", reading()), file(root, "g", reading()));
            let (fm, gm) = (f.stat().unwrap(), g.stat().unwrap());
            assert_eq!(fm.device, gm.device, "{n}");
            assert_ne!(fm.inode, gm.inode, "{n}");
            assert!(!f.is_same_object(&g), "{n}");
            assert!(f.is_same_object(&f.clone()), "{n}");
            let before = f.metadata_hash().unwrap();
            assert_eq!(before, root.metadata_hash_at("f", true).unwrap(), "{n}");
            assert_ne!(before, g.metadata_hash().unwrap(), "{n}");
            put(root, "f", b"22");
            assert_ne!(before, f.metadata_hash().unwrap(), "{n}");
            let (d1, d2) = (subdir(root, "."), subdir(root, "."));
            assert!(d1.is_same_object(&d2), "{n}");
            assert!(d1.is_same_object(root), "{n}");
            assert!(!Node::Dir(d1).is_same_object(&Node::File(f)), "{n}");
            assert_eq!(
                root.metadata_hash().unwrap(),
                d2.metadata_hash().unwrap(),
                "{n}"
            );
            root.sync().unwrap();
            d2.sync_data().unwrap();
            g.sync().unwrap();
            g.sync_data().unwrap();
        }
        assert_ne!(
            mem().root.stat().unwrap().device,
            mem().root.stat().unwrap().device
        );
    }
}

mod concurrency {
    use super::*;

    const THREADS: usize = 8;
    const LINES: usize = 1000;

    fn line(thread: usize, n: usize) -> Vec<u8> {
        let text = format!("thread {thread} line {n:05} ");
        let mut line = text.into_bytes();
        line.resize(31, b'.');
        line.push(b'\n');
        line
    }

    fn appends_stay_whole(root: DirHandle) {
        file(&root, "log", creating());
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let root = root.clone();
                thread::spawn(move || {
                    let log = file(&root, "log", writing());
                    for n in 0..LINES {
                        assert_eq!(log.append(&line(t, n)).unwrap(), 32);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let contents = get(&root, "log");
        assert_eq!(contents.len(), THREADS * LINES * 32);
        let mut next = [0; THREADS];
        for chunk in contents.chunks(32) {
            let t = usize::from(chunk[7] - b'0');
            assert_eq!(
                chunk,
                line(t, next[t]),
                "lines stay whole and in order per thread"
            );
            next[t] += 1;
        }
        assert_eq!(next, [LINES; THREADS]);
    }

    #[test]
    fn appends_from_many_threads_stay_whole_in_the_tree() {
        within(120, || appends_stay_whole(mem().root));
    }

    #[test]
    fn appends_from_many_threads_stay_whole_on_the_host() {
        let b = host();
        within(120, move || appends_stay_whole(b.root.clone()));
    }

    #[test]
    fn readers_and_writers_of_different_files_run_side_by_side() {
        let b = mem();
        put(&b.root, "read-me", &[1; 4096]);
        put(&b.root, "write-me", b"");
        let root = b.root.clone();
        within(120, move || {
            let mut workers = Vec::new();
            for _ in 0..4 {
                let reader = file(&root, "read-me", reading());
                workers.push(thread::spawn(move || {
                    for _ in 0..2000 {
                        assert_eq!(reader.read_at(0, 4096).unwrap(), [1; 4096]);
                    }
                }));
            }
            for t in 0..4u8 {
                let writer = file(&root, "write-me", writing());
                workers.push(thread::spawn(move || {
                    for n in 0..2000u64 {
                        writer.write_at((n % 64) * 4 + u64::from(t), &[t]).unwrap();
                    }
                }));
            }
            for worker in workers {
                worker.join().unwrap();
            }
            assert_eq!(get(&root, "write-me").len(), 256);
        });
    }

    #[test]
    fn readers_see_whole_versions_while_a_writer_renames_over_the_file() {
        let b = mem();
        put(&b.root, "current", &[0; 1024]);
        let root = b.root.clone();
        within(120, move || {
            let writer_root = root.clone();
            let writer = thread::spawn(move || {
                for version in 1..=500u32 {
                    let byte = (version % 251) as u8;
                    put(&writer_root, "next", &[byte; 1024]);
                    writer_root
                        .rename_at("next", &writer_root, "current")
                        .unwrap();
                }
            });
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let root = root.clone();
                    thread::spawn(move || {
                        for _ in 0..2000 {
                            let data = get(&root, "current");
                            assert_eq!(data.len(), 1024);
                            assert!(data.iter().all(|&byte| byte == data[0]), "a torn version");
                        }
                    })
                })
                .collect();
            writer.join().unwrap();
            for reader in readers {
                reader.join().unwrap();
            }
        });
    }

    #[test]
    fn opposite_renames_between_two_directories_do_not_deadlock() {
        let b = mem();
        for dir in ["a", "b", "a/inner", "b/inner"] {
            b.root.create_dir_at(dir).unwrap();
        }
        for n in 0..4 {
            put(&b.root, &format!("a/f{n}"), b"");
            put(&b.root, &format!("b/g{n}"), b"");
        }
        let root = b.root.clone();
        within(120, move || {
            let workers: Vec<_> = (0..4)
                .map(|n| {
                    let root = root.clone();
                    thread::spawn(move || {
                        let (a, other) = (subdir(&root, "a"), subdir(&root, "b"));
                        let (f, g) = (format!("f{n}"), format!("g{n}"));
                        for _ in 0..2000 {
                            // Files one way and the other, and directories
                            // between a parent and a nested directory.
                            a.rename_at(&f, &other, &f).unwrap();
                            other.rename_at(&g, &a, &g).unwrap();
                            other.rename_at(&f, &a, &f).unwrap();
                            a.rename_at(&g, &other, &g).unwrap();
                            let _ = root.rename_at("a/inner", &root, "b/inner/x");
                            let _ = root.rename_at("b/inner/x", &root, "a/inner");
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
        assert_eq!(
            names(&subdir(&b.root, "a")),
            ["f0", "f1", "f2", "f3", "inner"]
        );
    }

    #[test]
    fn crossing_directory_moves_never_make_a_cycle() {
        let b = mem();
        let fs = b.fs.clone().unwrap();
        b.root.create_dir_at("p").unwrap();
        b.root.create_dir_at("q").unwrap();
        let root = b.root.clone();
        within(120, move || {
            let moves = [("p", "q/p"), ("q", "p/q")];
            let workers: Vec<_> = moves
                .into_iter()
                .map(|(from, to)| {
                    let root = root.clone();
                    thread::spawn(move || {
                        for _ in 0..3000 {
                            if root.rename_at(from, &root, to).is_ok() {
                                root.rename_at(to, &root, from).unwrap();
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
        assert_eq!(names(&b.root), ["p", "q"]);
        assert_eq!(fs.usage().inodes, 3);
    }

    #[test]
    fn parallel_creates_in_one_directory_all_land() {
        let b = mem();
        let fs = b.fs.clone().unwrap();
        b.root.create_dir_at("d").unwrap();
        let root = b.root.clone();
        within(120, move || {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let d = subdir(&root, "d");
                    thread::spawn(move || {
                        for n in 0..500 {
                            put(&d, &format!("{t}-{n}"), b"x");
                            // Opening an existing name with `create` takes it.
                            file(&d, &format!("{}-0", (t + 1) % THREADS), creating());
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap();
            }
        });
        assert_eq!(names(&subdir(&b.root, "d")).len(), THREADS * 500);
        assert_eq!(
            fs.usage(),
            Usage {
                bytes: (THREADS * 500) as u64,
                inodes: 2 + (THREADS * 500) as u64
            }
        );
    }
}

mod quotas {
    use super::*;

    fn limited(max_bytes: u64, max_inodes: u64) -> (MemFs, DirHandle) {
        let fs = MemFs::new(Limits {
            max_bytes,
            max_inodes,
        });
        let root = Mount::mem(&fs, "/", false).unwrap().root();
        (fs, root)
    }

    #[test]
    fn writes_past_the_byte_quota_fail_and_change_nothing() {
        let (fs, root) = limited(100, 100);
        assert_eq!(
            fs.limits(),
            Limits {
                max_bytes: 100,
                max_inodes: 100
            }
        );
        let f = file(&root, "f", creating());
        f.write_at(0, &[1; 60]).unwrap();
        let before = f.stat().unwrap();
        let no_space = Err(FsError::InsufficientSpace);
        assert_eq!(f.write_at(50, &[2; 51]).map(drop), no_space);
        assert_eq!(f.write_at(200, b"x").map(drop), no_space);
        assert_eq!(f.append(&[3; 41]).map(drop), no_space);
        assert_eq!(f.set_size(101), no_space);
        assert_eq!(f.read_at(0, 1000).unwrap(), [1; 60]);
        assert_eq!(f.stat().unwrap(), before, "not even a timestamp changed");
        assert_eq!(f.write_at(50, &[2; 50]).unwrap(), 50);
        assert_eq!(fs.usage().bytes, 100);
        let g = file(&root, "g", creating());
        assert_eq!(g.write_at(0, b"x").map(drop), no_space);
        assert_eq!(
            root.symlink_at("f", "l"),
            no_space,
            "link targets count as bytes"
        );
        f.set_size(10).unwrap();
        assert_eq!(fs.usage().bytes, 10);
        g.write_at(0, &[4; 90]).unwrap();
        root.unlink_file_at("g").unwrap();
        assert_eq!(fs.usage().bytes, 100, "an open unlinked file still counts");
        drop(g);
        assert_eq!(fs.usage().bytes, 10);
    }

    #[test]
    fn creates_past_the_inode_quota_fail_and_change_nothing() {
        let (fs, root) = limited(1000, 4);
        file(&root, "f", creating());
        root.create_dir_at("d").unwrap();
        root.symlink_at("f", "l").unwrap();
        assert_eq!(fs.usage().inodes, 4);
        let no_space = Err(FsError::InsufficientSpace);
        assert_eq!(root.create_dir_at("e"), no_space);
        assert_eq!(root.open_at("g", creating()).map(drop), no_space);
        assert_eq!(root.symlink_at("f", "m"), no_space);
        assert_eq!(names(&root), ["d", "f", "l"]);
        assert_eq!(root.link_at("f", &root, "f2"), no_space, "a name counts");
        root.unlink_file_at("l").unwrap();
        root.create_dir_at("e").unwrap();
        assert_eq!(fs.usage().inodes, 4);
    }

    #[test]
    fn hard_links_count_as_names_until_they_go() {
        let (fs, root) = limited(1000, 4);
        let f = file(&root, "f", creating());
        root.link_at("f", &root, "g").unwrap();
        root.link_at("f", &root, "h").unwrap();
        assert_eq!(fs.usage().inodes, 4, "root, f and two more names");
        assert_eq!(
            root.link_at("f", &root, "i"),
            Err(FsError::InsufficientSpace)
        );
        root.unlink_file_at("g").unwrap();
        assert_eq!(fs.usage().inodes, 3);
        file(&root, "x", creating());
        root.rename_at("x", &root, "h").unwrap();
        assert_eq!(fs.usage().inodes, 3, "a rename over a name drops the name");
        root.unlink_file_at("f").unwrap();
        assert_eq!(fs.usage().inodes, 3, "the open file is still counted");
        root.unlink_file_at("h").unwrap();
        drop(f);
        assert_eq!(fs.usage().inodes, 1);
        file(&root, "a", creating());
        root.link_at("a", &root, "b").unwrap();
        drop(root);
        drop(fs);
    }

    #[test]
    fn a_private_tree_shares_its_budget_and_allocates_nothing_past_it() {
        let budget = std::sync::Arc::new(ByteBudget::new(64 << 20));
        let fs = MemFs::private(budget.clone());
        assert_eq!(
            fs.limits(),
            Limits {
                max_bytes: 64 << 20,
                max_inodes: 65_536
            }
        );
        let root = Mount::mem(&fs, "/", false).unwrap().root();
        // What the worker's linear memory holds is not the tree's to take.
        assert!(budget.reserve(60 << 20));
        let f = file(&root, "f", creating());
        let no_space = Err(FsError::InsufficientSpace);
        assert_eq!(f.set_size(2 << 30), no_space);
        assert_eq!(f.write_at(2 << 30, b"x").map(drop), no_space);
        assert_eq!(f.set_size(5 << 20), no_space);
        f.set_size(4 << 20).unwrap();
        assert_eq!(budget.used(), 64 << 20);
        assert!(!budget.reserve(1), "nor is the tree's the memory's");
        root.unlink_file_at("f").unwrap();
        drop(f);
        assert_eq!(budget.used(), 60 << 20);
    }

    #[test]
    fn the_default_limits_are_finite() {
        assert_eq!(
            Limits::DEFAULT,
            Limits {
                max_bytes: 1 << 30,
                max_inodes: 1 << 20
            }
        );
    }

    #[test]
    fn dropping_a_deep_tree_does_not_overflow_the_stack() {
        let (fs, root) = limited(u64::MAX, u64::MAX);
        let mut dir = root.clone();
        for _ in 0..100_000 {
            dir.create_dir_at("d").unwrap();
            dir = subdir(&dir, "d");
        }
        drop(dir);
        assert_eq!(fs.usage().inodes, 100_001);
        root.rename_at("d", &root, "still-there").unwrap();
        drop((fs, root));
    }
}

mod persistence {
    use super::*;
    use std::fs::{File, FileTimes};
    use std::path::Path;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn set_mtime(path: &Path, time: SystemTime) {
        let times = FileTimes::new().set_modified(time).set_accessed(time);
        File::open(path).unwrap().set_times(times).unwrap();
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::symlink_metadata(path).unwrap().modified().unwrap()
    }

    /// Lists a host tree: relative path, kind, and contents or link target.
    fn host_tree(base: &Path) -> Vec<(String, &'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pending = vec![base.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.strip_prefix(base).unwrap().display().to_string();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    out.push((name, "dir", Vec::new()));
                    pending.push(path);
                } else if meta.is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    out.push((name, "link", target.into_os_string().into_encoded_bytes()));
                } else {
                    out.push((name, "file", std::fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn sample(base: &Path) {
        std::fs::create_dir_all(base.join("docs/deep")).unwrap();
        std::fs::create_dir(base.join("empty")).unwrap();
        std::fs::write(base.join("docs/readme.txt"), b"read me").unwrap();
        std::fs::write(base.join("docs/deep/data.bin"), [0u8, 255, 7, 0]).unwrap();
        std::fs::write(base.join("blank"), b"").unwrap();
        std::os::unix::fs::symlink("docs/readme.txt", base.join("readme")).unwrap();
        std::os::unix::fs::symlink("/absolute/target", base.join("abs")).unwrap();
        set_mtime(&base.join("docs/readme.txt"), at(1_000_000_000));
        set_mtime(&base.join("docs/deep/data.bin"), at(1_100_000_000));
        set_mtime(&base.join("docs/deep"), at(1_200_000_000));
        set_mtime(&base.join("docs"), at(1_300_000_000));
    }

    #[test]
    fn seed_modify_save_round_trip() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let fs = MemFs::new(Limits::UNLIMITED);
        fs.seed_from(source.path()).unwrap();
        let root = Mount::mem(&fs, "/", false).unwrap().root();
        assert_eq!(get(&root, "readme"), b"read me");
        assert_eq!(root.readlink_at("abs").unwrap(), "/absolute/target");
        assert_eq!(
            root.stat_at("docs/readme.txt", false).unwrap().mtime,
            Some(at(1_000_000_000))
        );
        assert_eq!(
            root.stat_at("docs", false).unwrap().mtime,
            Some(at(1_300_000_000))
        );

        // The run changes things: host copies of these must follow.
        put(&root, "docs/deep/new.txt", b"made in the run");
        put(&root, "blank", b"no longer blank");
        root.unlink_file_at("docs/readme.txt").unwrap();
        root.symlink_at("deep/new.txt", "docs/latest").unwrap();
        let times = NewTimes {
            atime: NewTimestamp::Now,
            mtime: NewTimestamp::Timestamp(at(1_400_000_000)),
        };
        root.set_times_at("docs/deep", false, times).unwrap();

        let saved = tempfile::tempdir().unwrap();
        let target = saved.path().join("out");
        fs.save_to(&target).unwrap();

        let mut expected = host_tree(source.path());
        expected.retain(|(name, _, _)| name != "docs/readme.txt");
        expected.push((
            "docs/deep/new.txt".into(),
            "file",
            b"made in the run".to_vec(),
        ));
        expected.push(("docs/latest".into(), "link", b"deep/new.txt".to_vec()));
        for entry in &mut expected {
            if entry.0 == "blank" {
                entry.2 = b"no longer blank".to_vec();
            }
        }
        expected.sort();
        assert_eq!(host_tree(&target), expected);
        assert_eq!(mtime(&target.join("docs/deep/data.bin")), at(1_100_000_000));
        assert_eq!(mtime(&target.join("docs/deep")), at(1_400_000_000));
        for name in ["docs", "empty", "blank", "readme", "docs/latest"] {
            let in_tree = root.stat_at(name, false).unwrap().mtime.unwrap();
            assert_eq!(mtime(&target.join(name)), in_tree, "{name}");
        }
        let leftovers = std::fs::read_dir(&target).unwrap().filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("corral-save")
        });
        assert_eq!(leftovers.count(), 0, "no temporary files stay behind");
    }

    #[test]
    fn a_chain_deeper_than_the_stack_saves_and_seeds() {
        const DEPTH: usize = 3000;
        let fs = MemFs::new(Limits::UNLIMITED);
        let mut dir = Mount::mem(&fs, "/", false).unwrap().root();
        for _ in 0..DEPTH {
            dir.create_dir_at("d").unwrap();
            dir = subdir(&dir, "d");
        }
        put(&dir, "leaf", b"bottom");
        let saved = tempfile::tempdir().unwrap();
        let target = saved.path().join("out");
        // A small stack: the old recursion overflowed it well before this depth.
        let (fs, target) = thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                fs.save_to(&target).unwrap();
                let copy = MemFs::new(Limits::UNLIMITED);
                copy.seed_from(&target).unwrap();
                (copy, target)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(fs.usage().inodes, DEPTH as u64 + 2);
        let mut dir = Mount::mem(&fs, "/", false).unwrap().root();
        for _ in 0..DEPTH {
            dir = subdir(&dir, "d");
        }
        assert_eq!(
            get(&dir, "leaf"),
            b"bottom",
            "seeded back from the saved copy"
        );
        drop((dir, target));
    }

    #[test]
    fn seeding_respects_quotas_and_refuses_to_overwrite() {
        let source = tempfile::tempdir().unwrap();
        sample(source.path());
        let small = MemFs::new(Limits {
            max_bytes: 5,
            max_inodes: 100,
        });
        let err = small.seed_from(source.path()).unwrap_err();
        assert_eq!(err.source, FsError::InsufficientSpace);
        let fs = MemFs::new(Limits::UNLIMITED);
        fs.seed_from(source.path()).unwrap();
        let err = fs.seed_from(source.path()).unwrap_err();
        assert_eq!(err.source, FsError::Exist);
        assert!(err.path.starts_with(source.path()), "{err}");
        let missing = fs.seed_from(&source.path().join("missing")).unwrap_err();
        assert_eq!(missing.source, FsError::NoEntry);
    }

    #[test]
    fn saving_replaces_what_the_tree_has_and_leaves_the_rest() {
        let fs = MemFs::new(Limits::UNLIMITED);
        let root = Mount::mem(&fs, "/", false).unwrap().root();
        root.create_dir_at("was-a-file").unwrap();
        root.create_dir_at("was-a-link").unwrap();
        put(&root, "was-a-link/inside", b"tree");
        put(&root, "replaced", b"from the tree");

        let host = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let base = host.path();
        std::fs::write(base.join("was-a-file"), b"host file").unwrap();
        std::os::unix::fs::symlink(outside.path(), base.join("was-a-link")).unwrap();
        std::fs::write(base.join("replaced"), b"old host contents").unwrap();
        std::fs::write(base.join("unrelated"), b"host only").unwrap();
        fs.save_to(base).unwrap();

        assert!(base.join("was-a-file").is_dir());
        assert!(
            !std::fs::symlink_metadata(base.join("was-a-link"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(base.join("was-a-link/inside")).unwrap(),
            b"tree"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert_eq!(
            std::fs::read(base.join("replaced")).unwrap(),
            b"from the tree"
        );
        assert_eq!(std::fs::read(base.join("unrelated")).unwrap(), b"host only");

        std::fs::remove_file(base.join("replaced")).unwrap();
        std::fs::create_dir(base.join("replaced")).unwrap();
        std::fs::write(base.join("replaced/keep"), b"").unwrap();
        let err = fs.save_to(base).unwrap_err();
        assert_eq!(err.path, base.join("replaced"));
        assert!(base.join("replaced/keep").exists());
    }
}

mod mounts {
    use super::*;

    #[test]
    fn the_table_takes_normal_absolute_paths_once_each() {
        let fs = MemFs::new(Limits::UNLIMITED);
        let mount = Mount::mem(&fs, "/", false).unwrap();
        let mut table = MountTable::new();
        assert!(table.is_empty());
        table.add("/", mount.clone()).unwrap();
        table.add("/data", mount.clone()).unwrap();
        table.add("/data/more", mount.clone()).unwrap();
        assert_eq!(table.add("/data", mount.clone()), Err(FsError::Exist));
        for bad in [
            "", "data", "/data/", "//data", "/a/../b", "/./a", "/a/.", "/a\0b",
        ] {
            assert_eq!(
                table.add(bad, mount.clone()),
                Err(FsError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(table.len(), 3);
        let paths: Vec<_> = table.preopens().into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, ["/", "/data", "/data/more"]);
        let read_only: Vec<_> = table.iter().map(|(_, m)| m.is_read_only()).collect();
        assert_eq!(read_only, [false; 3]);
    }

    #[test]
    fn mounts_of_one_tree_see_each_other() {
        let fs = MemFs::new(Limits::UNLIMITED);
        let writer = Mount::mem(&fs, "/", false).unwrap();
        let reader = Mount::mem(&fs, "", true).unwrap();
        assert!(reader.is_read_only() && !writer.is_read_only());
        put(&writer.root(), "shared", b"hello");
        assert_eq!(get(&reader.root(), "shared"), b"hello");
        let temp = tempfile::tempdir().unwrap();
        let dir = cap_std::fs::Dir::open_ambient_dir(temp.path(), cap_std::ambient_authority());
        let host = Mount::host(dir.unwrap(), false);
        put(&host.root(), "on-disk", b"x");
        assert_eq!(std::fs::read(temp.path().join("on-disk")).unwrap(), b"x");
    }
}

mod errors {
    use super::*;
    use std::io;

    #[test]
    fn host_errnos_map_to_wasi_codes() {
        let cases = [
            (libc::EACCES, FsError::Access),
            (libc::EBADF, FsError::BadDescriptor),
            (libc::EBUSY, FsError::Busy),
            (libc::EXDEV, FsError::CrossDevice),
            (libc::EEXIST, FsError::Exist),
            (libc::EFBIG, FsError::FileTooLarge),
            (libc::EILSEQ, FsError::IllegalByteSequence),
            (libc::ENOMEM, FsError::InsufficientMemory),
            (libc::ENOSPC, FsError::InsufficientSpace),
            (libc::EDQUOT, FsError::InsufficientSpace),
            (libc::EINTR, FsError::Interrupted),
            (libc::EINVAL, FsError::Invalid),
            (libc::EIO, FsError::Io),
            (libc::EISDIR, FsError::IsDirectory),
            (libc::ELOOP, FsError::Loop),
            (libc::ENAMETOOLONG, FsError::NameTooLong),
            (libc::ENOENT, FsError::NoEntry),
            (libc::ENOTDIR, FsError::NotDirectory),
            (libc::ENOTEMPTY, FsError::NotEmpty),
            (libc::EPERM, FsError::NotPermitted),
            (libc::EOVERFLOW, FsError::Overflow),
            (libc::EROFS, FsError::ReadOnly),
            (libc::ETXTBSY, FsError::TextFileBusy),
            (libc::EMLINK, FsError::TooManyLinks),
            (libc::ENOTSUP, FsError::Unsupported),
            (libc::EOPNOTSUPP, FsError::Unsupported),
            (libc::EAGAIN, FsError::WouldBlock),
            (libc::ENXIO, FsError::Io),
        ];
        for (errno, expected) in cases {
            assert_eq!(
                FsError::from(io::Error::from_raw_os_error(errno)),
                expected,
                "{errno}"
            );
        }
    }

    #[test]
    fn errors_without_errno_map_by_kind() {
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside");
        assert_eq!(FsError::from(escape), FsError::NotPermitted);
        let cases = [
            (io::ErrorKind::NotFound, FsError::NoEntry),
            (io::ErrorKind::AlreadyExists, FsError::Exist),
            (io::ErrorKind::InvalidInput, FsError::Invalid),
            (io::ErrorKind::NotADirectory, FsError::NotDirectory),
            (io::ErrorKind::IsADirectory, FsError::IsDirectory),
            (io::ErrorKind::DirectoryNotEmpty, FsError::NotEmpty),
            (io::ErrorKind::StorageFull, FsError::InsufficientSpace),
            (io::ErrorKind::CrossesDevices, FsError::CrossDevice),
            (io::ErrorKind::Unsupported, FsError::Unsupported),
            (io::ErrorKind::Other, FsError::Io),
        ];
        for (kind, expected) in cases {
            assert_eq!(
                FsError::from(io::Error::new(kind, "test")),
                expected,
                "{kind:?}"
            );
        }
        assert_eq!(FsError::NotPermitted.to_string(), "operation not permitted");
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;
    use std::os::unix::fs::FileExt as _;
    use std::path::Path;

    #[derive(Debug, Clone)]
    enum Op {
        Create {
            path: String,
            exclusive: bool,
        },
        Write {
            path: String,
            offset: u64,
            data: Vec<u8>,
        },
        Append {
            path: String,
            data: Vec<u8>,
        },
        Truncate {
            path: String,
            size: u64,
        },
        Read {
            path: String,
        },
        Mkdir {
            path: String,
        },
        Rmdir {
            path: String,
        },
        Unlink {
            path: String,
        },
        Rename {
            from: String,
            to: String,
        },
        Link {
            from: String,
            to: String,
        },
        Symlink {
            target: String,
            path: String,
        },
        Stat {
            path: String,
            follow: bool,
        },
        Readlink {
            path: String,
        },
        ReadDir {
            path: String,
        },
        Open {
            path: String,
            follow: bool,
        },
    }

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Done,
        Count(usize),
        Bytes(Vec<u8>),
        Text(String),
        Stat {
            kind: FileKind,
            size: Option<u64>,
            nlink: u64,
        },
        Entries(Vec<(String, FileKind)>),
        Opened(FileKind),
        Failed(FsError),
    }

    /// Paths of one to three names below the root, some with `..` that
    /// never climbs above the root and some with a trailing slash.
    fn path() -> impl Strategy<Value = String> {
        let part = prop_oneof![4 => "[abc]", 1 => Just("..".to_owned())];
        (prop::collection::vec(part, 1..=3), any::<bool>(), 0..4u8).prop_map(
            |(parts, first_dot, slash)| {
                let mut depth = 0usize;
                let mut out = Vec::new();
                for part in parts {
                    if part == ".." {
                        if depth == 0 {
                            continue;
                        }
                        depth -= 1;
                    } else {
                        depth += 1;
                    }
                    out.push(part);
                }
                if out.is_empty() {
                    out.push("a".to_owned());
                }
                let mut path = out.join("/");
                if first_dot {
                    path = format!("./{path}");
                }
                if slash == 0 {
                    path.push('/');
                }
                path
            },
        )
    }

    /// Targets without `..` or `/` in front: resolving them never leaves the root.
    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c".to_owned()),
            Just("a/b".to_owned()),
            Just("b/c/".to_owned()),
            Just("./c".to_owned()),
        ]
    }

    fn data() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..12)
    }

    fn op() -> impl Strategy<Value = Op> {
        let create = |(path, exclusive)| Op::Create { path, exclusive };
        let write = |(path, offset, data)| Op::Write { path, offset, data };
        let stat = |(path, follow)| Op::Stat { path, follow };
        let open = |(path, follow)| Op::Open { path, follow };
        prop_oneof![
            3 => (path(), any::<bool>()).prop_map(create),
            2 => (path(), 0..40u64, data()).prop_map(write),
            2 => (path(), data()).prop_map(|(path, data)| Op::Append { path, data }),
            1 => (path(), 0..40u64).prop_map(|(path, size)| Op::Truncate { path, size }),
            2 => path().prop_map(|path| Op::Read { path }),
            3 => path().prop_map(|path| Op::Mkdir { path }),
            1 => path().prop_map(|path| Op::Rmdir { path }),
            1 => path().prop_map(|path| Op::Unlink { path }),
            2 => (path(), path()).prop_map(|(from, to)| Op::Rename { from, to }),
            1 => (path(), path()).prop_map(|(from, to)| Op::Link { from, to }),
            2 => (target(), path()).prop_map(|(target, path)| Op::Symlink { target, path }),
            2 => (path(), any::<bool>()).prop_map(stat),
            1 => path().prop_map(|path| Op::Readlink { path }),
            1 => path().prop_map(|path| Op::ReadDir { path }),
            1 => (path(), any::<bool>()).prop_map(open),
        ]
    }

    fn outcome<T>(result: Result<T, FsError>, done: impl FnOnce(T) -> Outcome) -> Outcome {
        result.map_or_else(Outcome::Failed, done)
    }

    fn stat_outcome(meta: Metadata) -> Outcome {
        Outcome::Stat {
            kind: meta.kind,
            // A directory's size is backend-specific.
            size: (meta.kind != FileKind::Directory).then_some(meta.size),
            nlink: meta.nlink,
        }
    }

    fn open_file(dir: &DirHandle, path: &str, options: OpenOptions) -> Result<FileHandle, FsError> {
        match dir.open_at(path, options)? {
            Node::File(file) => Ok(file),
            Node::Dir(_) => Err(FsError::IsDirectory),
        }
    }

    fn apply_vfs(dir: &DirHandle, op: &Op) -> Outcome {
        let follow = OpenOptions {
            follow_symlinks: true,
            ..OpenOptions::default()
        };
        let writer = OpenOptions {
            write: true,
            ..follow
        };
        match op {
            Op::Create { path, exclusive } => {
                let options = OpenOptions {
                    create: true,
                    exclusive: *exclusive,
                    ..writer
                };
                outcome(dir.open_at(path, options), |_| Outcome::Done)
            }
            Op::Write { path, offset, data } => outcome(
                open_file(dir, path, writer).and_then(|file| file.write_at(*offset, data)),
                Outcome::Count,
            ),
            Op::Append { path, data } => outcome(
                open_file(dir, path, writer).and_then(|file| file.append(data)),
                Outcome::Count,
            ),
            Op::Truncate { path, size } => outcome(
                open_file(dir, path, writer).and_then(|file| file.set_size(*size)),
                |()| Outcome::Done,
            ),
            Op::Read { path } => outcome(
                open_file(
                    dir,
                    path,
                    OpenOptions {
                        read: true,
                        ..follow
                    },
                )
                .and_then(|file| file.read_at(0, u64::MAX)),
                Outcome::Bytes,
            ),
            Op::Mkdir { path } => outcome(dir.create_dir_at(path), |()| Outcome::Done),
            Op::Rmdir { path } => outcome(dir.remove_dir_at(path), |()| Outcome::Done),
            Op::Unlink { path } => outcome(dir.unlink_file_at(path), |()| Outcome::Done),
            Op::Rename { from, to } => outcome(dir.rename_at(from, dir, to), |()| Outcome::Done),
            Op::Link { from, to } => outcome(dir.link_at(from, dir, to), |()| Outcome::Done),
            Op::Symlink { target, path } => {
                outcome(dir.symlink_at(target, path), |()| Outcome::Done)
            }
            Op::Stat { path, follow } => outcome(dir.stat_at(path, *follow), stat_outcome),
            Op::Readlink { path } => outcome(dir.readlink_at(path), Outcome::Text),
            Op::ReadDir { path } => {
                let options = OpenOptions {
                    read: true,
                    directory: true,
                    ..follow
                };
                let listing = dir.open_at(path, options).and_then(|node| match node {
                    Node::Dir(sub) => sub.read_dir(),
                    Node::File(_) => Err(FsError::NotDirectory),
                });
                outcome(listing, |entries| {
                    Outcome::Entries(entries.into_iter().map(|e| (e.name, e.kind)).collect())
                })
            }
            Op::Open { path, follow } => {
                let options = OpenOptions {
                    read: true,
                    follow_symlinks: *follow,
                    ..OpenOptions::default()
                };
                outcome(dir.open_at(path, options), |node| {
                    Outcome::Opened(match node {
                        Node::Dir(_) => FileKind::Directory,
                        Node::File(_) => FileKind::RegularFile,
                    })
                })
            }
        }
    }

    fn std_kind(file_type: std::fs::FileType) -> FileKind {
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_symlink() {
            FileKind::SymbolicLink
        } else {
            FileKind::RegularFile
        }
    }

    fn apply_std(root: &Path, op: &Op) -> Outcome {
        use std::os::unix::fs::MetadataExt as _;
        fn io<T>(result: std::io::Result<T>, done: impl FnOnce(T) -> Outcome) -> Outcome {
            outcome(result.map_err(FsError::from), done)
        }
        let at = |path: &str| root.join(path);
        let writer = || {
            let mut options = std::fs::OpenOptions::new();
            options.write(true);
            options
        };
        match op {
            Op::Create { path, exclusive } => {
                let mut options = writer();
                options.create(!exclusive).create_new(*exclusive);
                io(options.open(at(path)), |_| Outcome::Done)
            }
            Op::Write { path, offset, data } => io(
                writer()
                    .open(at(path))
                    .and_then(|file| file.write_all_at(data, *offset)),
                |()| Outcome::Count(data.len()),
            ),
            Op::Append { path, data } => io(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(at(path))
                    .and_then(|mut file| file.write_all(data)),
                |()| Outcome::Count(data.len()),
            ),
            Op::Truncate { path, size } => io(
                writer().open(at(path)).and_then(|file| file.set_len(*size)),
                |()| Outcome::Done,
            ),
            Op::Read { path } => io(std::fs::read(at(path)), Outcome::Bytes),
            Op::Mkdir { path } => io(std::fs::create_dir(at(path)), |()| Outcome::Done),
            Op::Rmdir { path } => io(std::fs::remove_dir(at(path)), |()| Outcome::Done),
            Op::Unlink { path } => io(std::fs::remove_file(at(path)), |()| Outcome::Done),
            Op::Rename { from, to } => io(std::fs::rename(at(from), at(to)), |()| Outcome::Done),
            Op::Link { from, to } => io(std::fs::hard_link(at(from), at(to)), |()| Outcome::Done),
            Op::Symlink { target, path } => {
                io(std::os::unix::fs::symlink(target, at(path)), |()| {
                    Outcome::Done
                })
            }
            Op::Stat { path, follow } => {
                let meta = if *follow {
                    std::fs::metadata(at(path))
                } else {
                    std::fs::symlink_metadata(at(path))
                };
                io(meta, |meta| {
                    stat_outcome(Metadata {
                        kind: std_kind(meta.file_type()),
                        device: 0,
                        inode: 0,
                        nlink: meta.nlink(),
                        size: meta.len(),
                        atime: None,
                        mtime: None,
                        ctime: None,
                    })
                })
            }
            Op::Readlink { path } => io(std::fs::read_link(at(path)), |target| {
                Outcome::Text(target.into_os_string().into_string().unwrap())
            }),
            Op::ReadDir { path } => io(
                std::fs::read_dir(at(path)).and_then(|entries| {
                    let mut listing = entries
                        .map(|entry| {
                            let entry = entry?;
                            let name = entry.file_name().into_string().unwrap();
                            Ok((name, std_kind(entry.file_type()?)))
                        })
                        .collect::<std::io::Result<Vec<_>>>()?;
                    listing.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(listing)
                }),
                Outcome::Entries,
            ),
            Op::Open { path, follow } => {
                use std::os::unix::fs::OpenOptionsExt as _;
                let flags = if *follow { 0 } else { libc::O_NOFOLLOW };
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(flags)
                    .open(at(path));
                io(file.and_then(|file| file.metadata()), |meta| {
                    Outcome::Opened(std_kind(meta.file_type()))
                })
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            // Keep regressions out of the source tree; failures print their case.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Random operation sequences give the same results on the tree, on
        /// the host backend and on the real filesystem through `std::fs`.
        #[test]
        fn backends_agree_with_std_fs(ops in prop::collection::vec(op(), 1..40)) {
            let fs = MemFs::new(Limits::UNLIMITED);
            let mem = Mount::mem(&fs, "/", false).unwrap().root();
            let host_temp = tempfile::tempdir().unwrap();
            let host = Mount::host_path(host_temp.path(), false).unwrap().root();
            let std_temp = tempfile::tempdir().unwrap();
            for (step, op) in ops.iter().enumerate() {
                let expected = apply_std(std_temp.path(), op);
                let on_mem = apply_vfs(&mem, op);
                let on_host = apply_vfs(&host, op);
                prop_assert_eq!(&on_mem, &expected, "MemFs, step {} {:?}", step, op);
                prop_assert_eq!(&on_host, &expected, "host, step {} {:?}", step, op);
            }
        }
    }
}
