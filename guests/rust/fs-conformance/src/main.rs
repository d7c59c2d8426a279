//! Exercises `wasi:filesystem` through plain `std::fs`, for the end-to-end
//! tests of Corral's virtual filesystem. Prints one line per check
//! (`ok NAME` or `FAIL NAME: why`) and exits 1 if any check failed.
//!
//! The first argument picks the mode:
//! - `all DIR`: every operation and error, in a fresh directory DIR/NAME
//!   (NAME is the worker's name), removed again at the end.
//! - `read-only DIR`: DIR is a read-only mount holding `seed.txt` ("seed\n")
//!   and the directory `sub`: reads work, every write is `EROFS`.
//! - `escape DIR`: DIR holds host-made symlinks `abs-root` -> `/`,
//!   `abs-etc` -> `/etc` and `up` -> `../..`; no path leads out of the mount.
//! - `no-fs`: the worker has no mounts; every path fails.
//! - `quota DIR`: the run's tree holds at most 10000 bytes and 12 inodes.
//! - `put DIR FILE TEXT`, `get DIR FILE`: write or print a file.
//! - `append DIR FILE ID N`: append N lines "ID i" to FILE, one write each.
//! - `scan DIR FILE N`: read FILE until it has N lines, checking that every
//!   line it ever sees is whole (giving up after 30 s).
//! - `upcase DIR IN OUT`: write IN's text in upper case to OUT.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// WASI errno values (as wasi-libc numbers them) for the codes that have no
/// stable `ErrorKind`.
const EINVAL: i32 = 28;
const ELOOP: i32 = 32;
const ENOSPC: i32 = 51;
const ENOTDIR: i32 = 54;
const ENOTEMPTY: i32 = 55;
const EPERM: i32 = 63;
const EROFS: i32 = 69;
const EISDIR: i32 = 31;
const EBADF: i32 = 8;
const EIO: i32 = 29;

type Check = Result<(), String>;

/// Counts checks and failures, printing each result as it comes.
#[derive(Default)]
struct Report {
    checks: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, body: impl FnOnce() -> Check) {
        self.checks += 1;
        match body() {
            Ok(()) => println!("ok {name}"),
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }

    fn finish(self) -> ! {
        println!("{} checks, {} failed", self.checks, self.failed);
        std::process::exit(if self.failed == 0 { 0 } else { 1 })
    }
}

/// Turns an I/O result into a check result that names what failed.
fn io<T>(what: &str, result: io::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e} (errno {:?})", e.raw_os_error()))
}

/// Succeeds if `result` failed with the WASI errno `errno`.
fn fails_with<T: std::fmt::Debug>(what: &str, result: io::Result<T>, errno: i32) -> Check {
    match result {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected errno {errno}, got {e} (errno {:?})",
            e.raw_os_error()
        )),
        Ok(value) => Err(format!(
            "{what}: expected errno {errno}, succeeded with {value:?}"
        )),
    }
}

/// Succeeds if `result` failed with `kind`.
fn fails_kind<T: std::fmt::Debug>(what: &str, result: io::Result<T>, kind: ErrorKind) -> Check {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected {kind:?}, got {e} ({:?})",
            e.kind()
        )),
        Ok(value) => Err(format!(
            "{what}: expected {kind:?}, succeeded with {value:?}"
        )),
    }
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// `std::fs::soft_link` is the one stable way to make a symlink on WASI.
#[allow(deprecated)]
fn symlink(target: &str, link: &Path) -> io::Result<()> {
    fs::soft_link(target, link)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let mut report = Report::default();
    match arg(1).as_str() {
        "all" => all(&mut report, &Path::new(&arg(2)).join(arg(0))),
        "read-only" => read_only(&mut report, Path::new(&arg(2))),
        "escape" => escape(&mut report, Path::new(&arg(2))),
        "no-fs" => no_fs(&mut report),
        "quota" => quota(&mut report, Path::new(&arg(2))),
        "put" => report.check("put", || {
            io("write", fs::write(Path::new(&arg(2)).join(arg(3)), arg(4)))
        }),
        "get" => report.check("get", || {
            let text = io("read", fs::read_to_string(Path::new(&arg(2)).join(arg(3))))?;
            println!("content: {text}");
            Ok(())
        }),
        "append" => {
            let count = arg(5).parse().unwrap_or(0);
            report.check("append", || {
                append_lines(&Path::new(&arg(2)).join(arg(3)), &arg(4), count)
            })
        }
        "scan" => {
            let count = arg(4).parse().unwrap_or(0);
            report.check("scan", || {
                scan_lines(&Path::new(&arg(2)).join(arg(3)), count)
            })
        }
        "upcase" => report.check("upcase", || {
            let dir = PathBuf::from(arg(2));
            let text = io("read", fs::read_to_string(dir.join(arg(3))))?;
            io("write", fs::write(dir.join(arg(4)), text.to_uppercase()))
        }),
        other => report.check("mode", || Err(format!("unknown mode {other:?}"))),
    }
    report.finish()
}

/// Every operation and error, in a fresh directory `dir`.
fn all(r: &mut Report, dir: &Path) {
    let p = |name: &str| dir.join(name);
    r.check("create-dir", || io("create_dir", fs::create_dir(dir)));
    r.check("write-read", || {
        io("write", fs::write(p("a.txt"), "hello, world\n"))?;
        expect_eq(
            "read",
            io("read", fs::read_to_string(p("a.txt")))?,
            "hello, world\n".into(),
        )
    });
    r.check("metadata", || {
        let meta = io("metadata", fs::metadata(p("a.txt")))?;
        expect_eq("is_file", meta.is_file(), true)?;
        expect_eq("len", meta.len(), 13)?;
        let modified = io("modified", meta.modified())?;
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        if age > Duration::from_secs(60) {
            return Err(format!("mtime is {age:?} old"));
        }
        expect_eq(
            "dir is_dir",
            io("metadata", fs::metadata(dir))?.is_dir(),
            true,
        )
    });
    r.check("overwrite-truncates", || {
        io("write", fs::write(p("a.txt"), "short"))?;
        expect_eq(
            "read",
            io("read", fs::read_to_string(p("a.txt")))?,
            "short".into(),
        )
    });
    r.check("append", || {
        let mut file = io("open", OpenOptions::new().append(true).open(p("a.txt")))?;
        io("write", file.write_all(b" and more"))?;
        io("write", file.write_all(b"!"))?;
        drop(file);
        expect_eq(
            "read",
            io("read", fs::read_to_string(p("a.txt")))?,
            "short and more!".into(),
        )
    });
    r.check("seek-read-write", || {
        let mut file = io(
            "open",
            OpenOptions::new().read(true).write(true).open(p("a.txt")),
        )?;
        io("seek", file.seek(SeekFrom::Start(6)))?;
        let mut word = [0; 3];
        io("read", file.read_exact(&mut word))?;
        expect_eq("word", &word, b"and")?;
        io("seek", file.seek(SeekFrom::Start(0)))?;
        io("write", file.write_all(b"SHORT"))?;
        io("seek", file.seek(SeekFrom::End(-1)))?;
        let mut rest = String::new();
        io("read", file.read_to_string(&mut rest))?;
        expect_eq("last", rest.as_str(), "!")?;
        expect_eq(
            "all",
            io("read", fs::read_to_string(p("a.txt")))?,
            "SHORT and more!".into(),
        )
    });
    r.check("write-past-end-fills-zeros", || {
        let mut file = io("open", OpenOptions::new().write(true).open(p("a.txt")))?;
        io("seek", file.seek(SeekFrom::Start(20)))?;
        io("write", file.write_all(b"z"))?;
        let data = io("read", fs::read(p("a.txt")))?;
        expect_eq("len", data.len(), 21)?;
        expect_eq("gap", &data[15..20], &[0u8; 5][..])
    });
    r.check("set-len", || {
        let file = io("open", OpenOptions::new().write(true).open(p("a.txt")))?;
        io("set_len", file.set_len(5))?;
        expect_eq(
            "shrunk",
            io("read", fs::read(p("a.txt")))?,
            b"SHORT".to_vec(),
        )?;
        io("set_len", file.set_len(8))?;
        expect_eq(
            "grown",
            io("read", fs::read(p("a.txt")))?,
            b"SHORT\0\0\0".to_vec(),
        )
    });
    r.check("large-file", || {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        io("write", fs::write(p("big.bin"), &data))?;
        let back = io("read", fs::read(p("big.bin")))?;
        expect_eq("len", back.len(), data.len())?;
        if back != data {
            return Err("contents differ".into());
        }
        io("remove", fs::remove_file(p("big.bin")))
    });
    r.check("set-times", || {
        let file = io("open", OpenOptions::new().write(true).open(p("a.txt")))?;
        let mtime = UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
        let atime = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
        io(
            "set_times",
            file.set_times(FileTimes::new().set_modified(mtime).set_accessed(atime)),
        )?;
        let meta = io("metadata", fs::metadata(p("a.txt")))?;
        expect_eq("mtime", io("modified", meta.modified())?, mtime)?;
        expect_eq("atime", io("accessed", meta.accessed())?, atime)
    });
    r.check("read-only-handle-refuses-write", || {
        let mut file = io("open", File::open(p("a.txt")))?;
        fails_with("write", file.write_all(b"x"), EBADF)
    });
    r.check("write-only-handle-refuses-read", || {
        let mut file = io("open", OpenOptions::new().write(true).open(p("a.txt")))?;
        let mut buf = [0; 4];
        fails_with("read", file.read(&mut buf), EBADF)
    });
    r.check("create-new", || {
        let mut file = io("create_new", File::create_new(p("new.txt")))?;
        io("write", file.write_all(b"1"))?;
        fails_kind(
            "again",
            File::create_new(p("new.txt")),
            ErrorKind::AlreadyExists,
        )
    });
    r.check("open-missing", || {
        fails_kind("open", File::open(p("missing")), ErrorKind::NotFound)
    });
    r.check("open-missing-dir-component", || {
        fails_kind("open", File::open(p("nodir/x")), ErrorKind::NotFound)
    });
    r.check("path-through-file", || {
        fails_with("open", File::open(p("a.txt/x")), ENOTDIR)?;
        fails_with("trailing slash", File::open(p("a.txt/")), ENOTDIR)
    });
    r.check("mkdir-tree", || {
        io("create_dir_all", fs::create_dir_all(p("d1/d2/d3")))?;
        io("write", fs::write(p("d1/d2/f.txt"), "f"))?;
        fails_kind("again", fs::create_dir(p("d1")), ErrorKind::AlreadyExists)?;
        fails_kind(
            "over file",
            fs::create_dir(p("a.txt")),
            ErrorKind::AlreadyExists,
        )?;
        fails_kind(
            "missing parent",
            fs::create_dir(p("nope/x")),
            ErrorKind::NotFound,
        )
    });
    r.check("read-dir", || {
        let mut names: Vec<(String, bool)> = Vec::new();
        for entry in io("read_dir", fs::read_dir(p("d1/d2")))? {
            let entry = io("entry", entry)?;
            let is_dir = io("file_type", entry.file_type())?.is_dir();
            names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        names.sort();
        expect_eq(
            "entries",
            names,
            vec![("d3".to_string(), true), ("f.txt".to_string(), false)],
        )
    });
    r.check("read-dir-of-file", || {
        fails_with("read_dir", fs::read_dir(p("a.txt")).map(|_| ()), ENOTDIR)
    });
    r.check("open-dir-for-write", || {
        fails_with("open", OpenOptions::new().write(true).open(p("d1")), EISDIR)
    });
    r.check("read-dir-as-file", || {
        let result = fs::read(p("d1"));
        fails_with("read", result, EISDIR)
    });
    r.check("remove-dir", || {
        fails_with("non-empty", fs::remove_dir(p("d1/d2")), ENOTEMPTY)?;
        io("remove_dir", fs::remove_dir(p("d1/d2/d3")))?;
        fails_kind("gone", fs::metadata(p("d1/d2/d3")), ErrorKind::NotFound)?;
        fails_with("a file", fs::remove_dir(p("a.txt")), ENOTDIR)?;
        fails_kind("missing", fs::remove_dir(p("missing")), ErrorKind::NotFound)
    });
    r.check("remove-file", || {
        io("remove_file", fs::remove_file(p("new.txt")))?;
        fails_kind("gone", fs::metadata(p("new.txt")), ErrorKind::NotFound)?;
        fails_with("a dir", fs::remove_file(p("d1")), EISDIR)?;
        fails_kind(
            "missing",
            fs::remove_file(p("new.txt")),
            ErrorKind::NotFound,
        )
    });
    r.check("unlinked-file-stays-open", || {
        io("write", fs::write(p("tmp.txt"), "still here"))?;
        let mut file = io("open", File::open(p("tmp.txt")))?;
        io("remove_file", fs::remove_file(p("tmp.txt")))?;
        let mut text = String::new();
        io("read", file.read_to_string(&mut text))?;
        expect_eq("text", text.as_str(), "still here")
    });
    r.check("rename-file", || {
        io("write", fs::write(p("r1.txt"), "one"))?;
        io("write", fs::write(p("r2.txt"), "two"))?;
        io("rename", fs::rename(p("r1.txt"), p("r3.txt")))?;
        fails_kind("old gone", fs::metadata(p("r1.txt")), ErrorKind::NotFound)?;
        io("rename over", fs::rename(p("r3.txt"), p("r2.txt")))?;
        expect_eq(
            "replaced",
            io("read", fs::read_to_string(p("r2.txt")))?,
            "one".into(),
        )?;
        io("rename into dir", fs::rename(p("r2.txt"), p("d1/r.txt")))?;
        expect_eq(
            "moved",
            io("read", fs::read_to_string(p("d1/r.txt")))?,
            "one".into(),
        )
    });
    r.check("rename-dir", || {
        io("rename", fs::rename(p("d1"), p("e1")))?;
        expect_eq(
            "moved",
            io("read", fs::read_to_string(p("e1/d2/f.txt")))?,
            "f".into(),
        )?;
        io("create_dir", fs::create_dir(p("full")))?;
        io("write", fs::write(p("full/x"), "x"))?;
        fails_with("onto non-empty", fs::rename(p("e1"), p("full")), ENOTEMPTY)?;
        fails_with("file onto dir", fs::rename(p("a.txt"), p("full")), EISDIR)?;
        fails_with("dir onto file", fs::rename(p("full"), p("a.txt")), ENOTDIR)?;
        fails_with(
            "into itself",
            fs::rename(p("e1"), p("e1/d2/inside")),
            EINVAL,
        )?;
        fails_kind(
            "missing",
            fs::rename(p("missing"), p("m2")),
            ErrorKind::NotFound,
        )
    });
    r.check("hard-link", || {
        io("write", fs::write(p("orig.txt"), "shared"))?;
        io("hard_link", fs::hard_link(p("orig.txt"), p("link.txt")))?;
        let mut link = io("open", OpenOptions::new().append(true).open(p("link.txt")))?;
        io("append", link.write_all(b"!"))?;
        expect_eq(
            "through orig",
            io("read", fs::read_to_string(p("orig.txt")))?,
            "shared!".into(),
        )?;
        fails_kind(
            "onto existing",
            fs::hard_link(p("orig.txt"), p("a.txt")),
            ErrorKind::AlreadyExists,
        )?;
        fails_with("a dir", fs::hard_link(p("e1"), p("e1link")), EPERM)?;
        io("remove orig", fs::remove_file(p("orig.txt")))?;
        expect_eq(
            "link survives",
            io("read", fs::read_to_string(p("link.txt")))?,
            "shared!".into(),
        )
    });
    r.check("symlink", || {
        io("symlink", symlink("a.txt", &p("sym")))?;
        expect_eq(
            "read_link",
            io("read_link", fs::read_link(p("sym")))?,
            PathBuf::from("a.txt"),
        )?;
        let lmeta = io("symlink_metadata", fs::symlink_metadata(p("sym")))?;
        expect_eq("is_symlink", lmeta.file_type().is_symlink(), true)?;
        expect_eq(
            "followed",
            io("read", fs::read(p("sym")))?,
            b"SHORT\0\0\0".to_vec(),
        )?;
        fails_kind("taken", symlink("x", &p("sym")), ErrorKind::AlreadyExists)?;
        fails_with("read_link of a file", fs::read_link(p("a.txt")), EINVAL)
    });
    r.check("symlink-to-dir", || {
        io("symlink", symlink("e1/d2", &p("dlink")))?;
        expect_eq(
            "through",
            io("read", fs::read_to_string(p("dlink/f.txt")))?,
            "f".into(),
        )?;
        fails_with("remove_dir on link", fs::remove_dir(p("dlink")), ENOTDIR)?;
        io("remove_file on link", fs::remove_file(p("dlink")))?;
        expect_eq(
            "target kept",
            io("metadata", fs::metadata(p("e1/d2")))?.is_dir(),
            true,
        )
    });
    r.check("dangling-symlink", || {
        io("symlink", symlink("nowhere", &p("dangling")))?;
        fails_kind("follow", fs::metadata(p("dangling")), ErrorKind::NotFound)?;
        io("lstat", fs::symlink_metadata(p("dangling")))?;
        fails_kind(
            "mkdir over it",
            fs::create_dir(p("dangling")),
            ErrorKind::AlreadyExists,
        )
    });
    r.check("symlink-loop", || {
        io("symlink", symlink("loop2", &p("loop1")))?;
        io("symlink", symlink("loop1", &p("loop2")))?;
        io("symlink", symlink("self", &p("self")))?;
        fails_with("open loop", File::open(p("loop1")), ELOOP)?;
        fails_with("stat self", fs::metadata(p("self")), ELOOP)?;
        fails_with("through loop", fs::metadata(p("loop1/x")), ELOOP)
    });
    r.check("escape-dotdot", || {
        let up: PathBuf = dir
            .components()
            .skip(1)
            .fold(dir.to_path_buf(), |path, _| path.join(".."));
        fails_with("read", fs::read(up.join("../../etc/passwd")), EPERM)?;
        fails_with("create", fs::write(up.join("../escaped.txt"), "x"), EPERM)?;
        fails_with("mkdir", fs::create_dir(up.join("../escaped")), EPERM)
    });
    r.check("escape-absolute-symlink", || {
        fails_with("create /", symlink("/", &p("root")), EPERM)?;
        fails_with("create /etc", symlink("/etc/passwd", &p("passwd")), EPERM)
    });
    r.check("escape-relative-symlink", || {
        let depth = dir.components().count() + 2;
        let target = vec![".."; depth].join("/");
        io("symlink", symlink(&target, &p("climb")))?;
        fails_with("follow", fs::read_dir(p("climb")).map(|_| ()), EPERM)?;
        fails_with("through", fs::read(p("climb/etc/passwd")), EPERM)?;
        io(
            "symlink",
            symlink("../../../../../../../../../etc/passwd", &p("climb2")),
        )?;
        fails_with("open", File::open(p("climb2")), EPERM)
    });
    r.check("remove-dir-all", || {
        io("create_dir_all", fs::create_dir_all(p("tree/a/b/c")))?;
        for name in ["tree/x", "tree/a/y", "tree/a/b/z", "tree/a/b/c/w"] {
            io("write", fs::write(p(name), name))?;
        }
        io("symlink", symlink("../../x", &p("tree/a/b/lnk")))?;
        io("remove_dir_all", fs::remove_dir_all(p("tree")))?;
        fails_kind("gone", fs::metadata(p("tree")), ErrorKind::NotFound)
    });
    r.check("cleanup", || {
        io("remove_dir_all", fs::remove_dir_all(dir))?;
        fails_kind("gone", fs::metadata(dir), ErrorKind::NotFound)
    });
}

/// A read-only mount: reads work, every mutation is `EROFS`.
fn read_only(r: &mut Report, dir: &Path) {
    let p = |name: &str| dir.join(name);
    r.check("ro-read", || {
        expect_eq(
            "seed",
            io("read", fs::read_to_string(p("seed.txt")))?,
            "seed\n".into(),
        )?;
        expect_eq(
            "sub",
            io("metadata", fs::metadata(p("sub")))?.is_dir(),
            true,
        )?;
        expect_eq("list", io("read_dir", fs::read_dir(dir))?.count(), 2)
    });
    r.check("ro-write", || {
        fails_with("write", fs::write(p("seed.txt"), "x"), EROFS)
    });
    r.check("ro-create", || {
        fails_with("create", fs::write(p("new.txt"), "x"), EROFS)
    });
    r.check("ro-append", || {
        fails_with(
            "append",
            OpenOptions::new().append(true).open(p("seed.txt")),
            EROFS,
        )
    });
    r.check("ro-mkdir", || {
        fails_with("mkdir", fs::create_dir(p("d")), EROFS)
    });
    r.check("ro-rmdir", || {
        fails_with("rmdir", fs::remove_dir(p("sub")), EROFS)
    });
    r.check("ro-unlink", || {
        fails_with("unlink", fs::remove_file(p("seed.txt")), EROFS)
    });
    r.check("ro-rename", || {
        fails_with("rename", fs::rename(p("seed.txt"), p("x")), EROFS)
    });
    r.check("ro-link", || {
        fails_with("link", fs::hard_link(p("seed.txt"), p("x")), EROFS)
    });
    r.check("ro-symlink", || {
        fails_with("symlink", symlink("seed.txt", &p("x")), EROFS)
    });
    r.check("ro-set-times", || {
        let file = io("open", File::open(p("seed.txt")))?;
        fails_with(
            "set_modified",
            file.set_modified(UNIX_EPOCH + Duration::from_secs(5)),
            EROFS,
        )
    });
    r.check("ro-unchanged", || {
        expect_eq(
            "seed",
            io("read", fs::read_to_string(p("seed.txt")))?,
            "seed\n".into(),
        )
    });
}

/// Host-made symlinks that point out of the mount are never followed.
fn escape(r: &mut Report, dir: &Path) {
    let p = |name: &str| dir.join(name);
    r.check("host-abs-root-symlink", || {
        expect_eq(
            "read_link",
            io("read_link", fs::read_link(p("abs-root")))?,
            PathBuf::from("/"),
        )?;
        fails_with("list", fs::read_dir(p("abs-root")).map(|_| ()), EPERM)?;
        fails_with("stat", fs::metadata(p("abs-root")), EPERM)
    });
    r.check("host-abs-etc-symlink", || {
        fails_with("read", fs::read(p("abs-etc/passwd")), EPERM)?;
        fails_with("create through", fs::write(p("abs-etc/evil"), "x"), EPERM)
    });
    r.check("host-relative-climb-symlink", || {
        fails_with("list", fs::read_dir(p("up")).map(|_| ()), EPERM)?;
        fails_with("read", fs::read(p("up/etc/passwd")), EPERM)
    });
    r.check("dotdot-above-mount", || {
        let mut up = dir.to_path_buf();
        for _ in 0..dir.components().count() + 1 {
            up.push("..");
        }
        fails_with("read", fs::read(up.join("etc/passwd")), EPERM)
    });
}

/// A worker without mounts sees no files at all.
fn no_fs(r: &mut Report) {
    for path in ["/", "/etc/passwd", ".", "data/x"] {
        r.check(&format!("no-fs {path}"), || match fs::metadata(path) {
            Ok(_) => Err(format!("{path} exists")),
            Err(_) => Ok(()),
        });
    }
    r.check("no-fs create", || match fs::write("/new.txt", "x") {
        Ok(()) => Err("created /new.txt".into()),
        Err(_) => Ok(()),
    });
}

/// The run's tree holds at most 10000 bytes and 12 inodes.
fn quota(r: &mut Report, dir: &Path) {
    let p = |name: &str| dir.join(name);
    r.check("quota-fits", || {
        io("write", fs::write(p("q.bin"), vec![1u8; 6000]))
    });
    r.check("quota-write-refused", || {
        // wasi-libc turns every failed stream write into EIO without asking
        // `filesystem-error-code` (the C guest, through the preview1
        // adapter, sees ENOSPC); calls that return an error code give ENOSPC.
        let mut file = io("open", OpenOptions::new().append(true).open(p("q.bin")))?;
        fails_with("append", file.write_all(&[2u8; 4500][..]), EIO)?;
        let mut file = io("open", OpenOptions::new().write(true).open(p("q.bin")))?;
        io("seek", file.seek(SeekFrom::Start(8000)))?;
        fails_with("write past end", file.write_all(&[3u8; 3000][..]), EIO)?;
        fails_with("set_len", file.set_len(20_000), ENOSPC)
    });
    r.check("quota-not-half-applied", || {
        let data = io("read", fs::read(p("q.bin")))?;
        expect_eq("len", data.len(), 6000)?;
        expect_eq("intact", data.iter().all(|&b| b == 1), true)
    });
    r.check("quota-room-left", || {
        let mut file = io("open", OpenOptions::new().append(true).open(p("q.bin")))?;
        io("append", file.write_all(&[4u8; 3000][..]))
    });
    r.check("quota-inodes", || {
        let mut created = 0;
        let last = loop {
            match fs::create_dir(p(&format!("d{created}"))) {
                Ok(()) => created += 1,
                Err(e) => break e,
            }
            if created > 100 {
                return Err("no inode limit".into());
            }
        };
        println!("created {created} directories");
        fails_with::<()>("mkdir", Err(last), ENOSPC)?;
        fails_with("create file", fs::write(p("one-more"), ""), ENOSPC)
    });
    r.check("quota-freed", || {
        io("remove", fs::remove_file(p("q.bin")))?;
        io("write", fs::write(p("again.bin"), vec![5u8; 9000]))
    });
}

/// Appends `count` lines "ID i", one `write` each.
fn append_lines(path: &Path, id: &str, count: u32) -> Check {
    let mut file = io(
        "open",
        OpenOptions::new().create(true).append(true).open(path),
    )?;
    for i in 0..count {
        io(
            "append",
            file.write_all(format!("{id} {i:05}\n").as_bytes()),
        )?;
    }
    Ok(())
}

/// Reads `path` until it has `count` lines; every line seen must be whole.
fn scan_lines(path: &Path, count: usize) -> Check {
    let start = Instant::now();
    let mut reads = 0u32;
    loop {
        reads += 1;
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("read: {e}")),
        };
        let whole = text.len() - text.rfind('\n').map_or(0, |i| i + 1);
        for line in text[..text.len() - whole].lines() {
            let ok = matches!(line.split_once(' '), Some((id, n)) if id.starts_with('w') && n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(format!("torn line {line:?} after {reads} reads"));
            }
        }
        let lines = text.matches('\n').count();
        if lines >= count {
            println!("saw {lines} lines in {reads} reads");
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("only {lines} lines after {reads} reads"));
        }
    }
}
