//! The path operations of the filesystem differential test, as POSIX calls:
//! compiled into the `fs-diff` guest (wasi-libc over Corral's tree) and into
//! tests/fs_diff.rs (glibc over a tmpfs directory), so both sides run the
//! very same code. It depends on `libc` only.
//!
//! One operation per line, words separated by spaces; each gives one result
//! line: `ok`, `ok DETAILS` or `err ENAME` (errno by name, as the two libcs
//! number errno differently). Slots 0-3 hold open descriptors.
//!
//! - `open SLOT PATH FLAGS`: FLAGS letters: `r` read, `w` write, `b` both,
//!   `c` O_CREAT, `x` O_EXCL, `t` O_TRUNC, `d` O_DIRECTORY, `a` O_APPEND,
//!   `n` O_NOFOLLOW.
//! - `close SLOT`, `write SLOT LEN BYTE`, `read SLOT LEN`, `seek SLOT OFF`,
//!   `seekend SLOT OFF`, `trunc SLOT SIZE`, `fstat SLOT`.
//! - `stat PATH`, `lstat PATH`, `mkdir PATH`, `rmdir PATH`, `unlink PATH`,
//!   `rename OLD NEW`, `link OLD NEW`, `symlink TARGET PATH`,
//!   `readlink PATH`, `list PATH`.

use std::ffi::{CStr, CString, c_int};

/// Descriptors a sequence can hold at once.
pub const SLOTS: usize = 4;

/// A sequence's state: the directory paths are resolved from, and the
/// descriptors in the slots (-1 when empty).
pub struct Ops {
    base: c_int,
    slots: [c_int; SLOTS],
}

/// The errno of the last failed call, by name.
fn errno_name() -> String {
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let name = match e {
        libc::EACCES => "EACCES",
        libc::EBADF => "EBADF",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EFBIG => "EFBIG",
        libc::EINVAL => "EINVAL",
        libc::EIO => "EIO",
        libc::EISDIR => "EISDIR",
        libc::ELOOP => "ELOOP",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOENT => "ENOENT",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOTSUP => "ENOTSUP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EPERM => "EPERM",
        libc::EROFS => "EROFS",
        libc::ESPIPE => "ESPIPE",
        libc::EXDEV => "EXDEV",
        other => return format!("err errno{other}"),
    };
    format!("err {name}")
}

/// `ok` or the errno of a call that returns -1 on failure.
fn status(ret: impl Into<i64>) -> String {
    if ret.into() < 0 {
        errno_name()
    } else {
        "ok".into()
    }
}

fn c(path: &str) -> CString {
    CString::new(path).unwrap_or_default()
}

/// FNV-1a, to compare contents without printing them.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stat result: kind, and for files and symlinks the size and links
/// (a directory's size and link count are the filesystem's own business).
fn describe(st: &libc::stat) -> String {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => "ok dir".into(),
        libc::S_IFREG => format!("ok file {} {}", st.st_size, st.st_nlink),
        libc::S_IFLNK => format!("ok link {}", st.st_size),
        other => format!("ok mode{other:o}"),
    }
}

fn open_flags(letters: &str) -> c_int {
    let mut flags = if letters.contains('b') {
        libc::O_RDWR
    } else if letters.contains('w') {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    for (letter, flag) in [
        ('c', libc::O_CREAT),
        ('x', libc::O_EXCL),
        ('t', libc::O_TRUNC),
        ('d', libc::O_DIRECTORY),
        ('a', libc::O_APPEND),
        ('n', libc::O_NOFOLLOW),
    ] {
        if letters.contains(letter) {
            flags |= flag;
        }
    }
    flags
}

impl Ops {
    /// Operations on paths below the directory open as `base`.
    pub fn new(base: c_int) -> Ops {
        Ops {
            base,
            slots: [-1; SLOTS],
        }
    }

    /// Runs one operation line; its result line.
    pub fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let word = |i: usize| words.get(i).copied().unwrap_or("");
        let number = |i: usize| word(i).parse::<i64>().unwrap_or(0);
        let slot = (number(1).rem_euclid(SLOTS as i64)) as usize;
        let fd = self.slots[slot];
        let base = self.base;
        // SAFETY: plain POSIX calls on descriptors this struct owns and
        // NUL-terminated paths; buffers outlive the calls that use them.
        unsafe {
            match word(0) {
                "open" => {
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    let new = libc::openat(base, c(word(2)).as_ptr(), open_flags(word(3)), 0o644);
                    self.slots[slot] = new;
                    status(new)
                }
                "close" => {
                    self.slots[slot] = -1;
                    status(libc::close(fd))
                }
                "write" => {
                    let data = vec![number(3) as u8; number(2) as usize];
                    let n = libc::write(fd, data.as_ptr().cast(), data.len());
                    if n < 0 {
                        errno_name()
                    } else {
                        format!("ok {n}")
                    }
                }
                "read" => {
                    let mut data = vec![0u8; number(2) as usize];
                    let n = libc::read(fd, data.as_mut_ptr().cast(), data.len());
                    if n < 0 {
                        return errno_name();
                    }
                    data.truncate(n as usize);
                    format!("ok {n} {:x}", fnv(&data))
                }
                "seek" | "seekend" => {
                    let whence = if word(0) == "seek" {
                        libc::SEEK_SET
                    } else {
                        libc::SEEK_END
                    };
                    let at = libc::lseek(fd, number(2), whence);
                    if at < 0 {
                        errno_name()
                    } else {
                        format!("ok {at}")
                    }
                }
                "trunc" => status(libc::ftruncate(fd, number(2))),
                "fstat" => {
                    let mut st: libc::stat = std::mem::zeroed();
                    if libc::fstat(fd, &mut st) < 0 {
                        errno_name()
                    } else {
                        describe(&st)
                    }
                }
                "stat" | "lstat" => {
                    let mut st: libc::stat = std::mem::zeroed();
                    let flags = if word(0) == "lstat" {
                        libc::AT_SYMLINK_NOFOLLOW
                    } else {
                        0
                    };
                    if libc::fstatat(base, c(word(1)).as_ptr(), &mut st, flags) < 0 {
                        errno_name()
                    } else {
                        describe(&st)
                    }
                }
                "mkdir" => status(libc::mkdirat(base, c(word(1)).as_ptr(), 0o755)),
                "rmdir" => status(libc::unlinkat(
                    base,
                    c(word(1)).as_ptr(),
                    libc::AT_REMOVEDIR,
                )),
                "unlink" => status(libc::unlinkat(base, c(word(1)).as_ptr(), 0)),
                "rename" => status(libc::renameat(
                    base,
                    c(word(1)).as_ptr(),
                    base,
                    c(word(2)).as_ptr(),
                )),
                "link" => status(libc::linkat(
                    base,
                    c(word(1)).as_ptr(),
                    base,
                    c(word(2)).as_ptr(),
                    0,
                )),
                "symlink" => status(libc::symlinkat(
                    c(word(1)).as_ptr(),
                    base,
                    c(word(2)).as_ptr(),
                )),
                "readlink" => {
                    let mut buf = [0u8; 256];
                    let n = libc::readlinkat(
                        base,
                        c(word(1)).as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    );
                    if n < 0 {
                        return errno_name();
                    }
                    format!("ok {}", String::from_utf8_lossy(&buf[..n as usize]))
                }
                "list" => self.list(word(1)),
                other => format!("unknown op {other}"),
            }
        }
    }

    /// The sorted names in the directory at `path` (`.` and `..` left out).
    fn list(&self, path: &str) -> String {
        // SAFETY: as in `run`; the DIR owns `fd` and is closed once.
        unsafe {
            let fd = libc::openat(
                self.base,
                c(path).as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY,
            );
            if fd < 0 {
                return errno_name();
            }
            let dir = libc::fdopendir(fd);
            if dir.is_null() {
                libc::close(fd);
                return errno_name();
            }
            let mut names = Vec::new();
            loop {
                let entry = libc::readdir(dir);
                if entry.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*entry).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                if name != "." && name != ".." {
                    names.push(name);
                }
            }
            libc::closedir(dir);
            names.sort();
            format!("ok [{}]", names.join(","))
        }
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        for fd in self.slots {
            if fd >= 0 {
                // SAFETY: a descriptor this struct opened and still owns.
                unsafe { libc::close(fd) };
            }
        }
    }
}
