/*
 * Exercises wasi:filesystem through plain POSIX (wasi-libc), built as a
 * WASI preview1 core module that Corral adapts into a component, for the
 * end-to-end tests of Corral's virtual filesystem. Prints one line per check
 * ("ok NAME" or "FAIL NAME: why") and exits 1 if any check failed.
 *
 *   fs-conformance all DIR        every operation and error, in DIR/NAME
 *                                 (NAME is argv[0], the worker's name)
 *   fs-conformance read-only DIR  DIR is read-only and holds seed.txt
 *                                 ("seed\n"): reads work, writes are EROFS
 *   fs-conformance quota DIR      the run's tree holds at most 10000 bytes
 *                                 and 12 inodes: past them, ENOSPC
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;
static char why[512];
static char base[1024];

/* Records why the current check failed; always returns 0 (failure). */
static int fail(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    return 0;
}

static void check(const char *name, int (*body)(void)) {
    why[0] = '\0';
    checks++;
    if (body()) {
        printf("ok %s\n", name);
    } else {
        failures++;
        printf("FAIL %s: %s\n", name, why);
    }
}

/* The path NAME inside the directory under test. */
static const char *p(const char *name) {
    static char bufs[4][1024];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", base, name);
    return buf;
}

/* Fails the check unless CALL returned 0. */
#define OK(call)                                                               \
    do {                                                                       \
        if ((call) != 0)                                                       \
            return fail("%s: %s (errno %d)", #call, strerror(errno), errno);   \
    } while (0)

/* Fails the check unless CALL returned -1 with errno ERR. */
#define FAILS(call, err)                                                       \
    do {                                                                       \
        errno = 0;                                                             \
        if ((call) != -1)                                                      \
            return fail("%s: succeeded, expected %s", #call, #err);            \
        if (errno != (err))                                                    \
            return fail("%s: %s (errno %d), expected %s", #call,              \
                        strerror(errno), errno, #err);                         \
    } while (0)

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            return fail("expected %s (errno %d)", #cond, errno);               \
    } while (0)

/* Writes TEXT to PATH (created or truncated) with stdio. */
static int put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Reads PATH into BUF (NUL-terminated); returns the length or -1. */
static long get(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (long)n;
}

static int c_mkdir(void) {
    OK(mkdir(base, 0755));
    FAILS(mkdir(base, 0755), EEXIST);
    FAILS(mkdir(p("no/such"), 0755), ENOENT);
    return 1;
}

static int c_stdio(void) {
    char buf[64];
    OK(put(p("a.txt"), "hello, world\n"));
    EXPECT(get(p("a.txt"), buf, sizeof buf) == 13);
    EXPECT(strcmp(buf, "hello, world\n") == 0);
    FILE *f = fopen(p("a.txt"), "r+");
    EXPECT(f != NULL);
    OK(fseek(f, 7, SEEK_SET));
    EXPECT(fwrite("WORLD", 1, 5, f) == 5);
    OK(fseek(f, 0, SEEK_END));
    EXPECT(ftell(f) == 13);
    OK(fseek(f, 0, SEEK_SET));
    EXPECT(fread(buf, 1, 5, f) == 5);
    EXPECT(memcmp(buf, "hello", 5) == 0);
    OK(fclose(f));
    EXPECT(get(p("a.txt"), buf, sizeof buf) == 13);
    EXPECT(strcmp(buf, "hello, WORLD\n") == 0);
    EXPECT(fopen(p("missing"), "r") == NULL && errno == ENOENT);
    return 1;
}

static int c_append(void) {
    char buf[64];
    FILE *f = fopen(p("a.txt"), "a");
    EXPECT(f != NULL);
    EXPECT(fputs("more\n", f) >= 0);
    OK(fclose(f));
    int fd = open(p("a.txt"), O_WRONLY | O_APPEND);
    EXPECT(fd >= 0);
    EXPECT(lseek(fd, 0, SEEK_SET) == 0);
    EXPECT(write(fd, "end\n", 4) == 4);
    EXPECT((fcntl(fd, F_GETFL) & O_APPEND) != 0);
    OK(close(fd));
    EXPECT(get(p("a.txt"), buf, sizeof buf) == 22);
    EXPECT(strcmp(buf, "hello, WORLD\nmore\nend\n") == 0);
    return 1;
}

static int c_pread_pwrite(void) {
    char buf[16] = {0};
    int fd = open(p("a.txt"), O_RDWR);
    EXPECT(fd >= 0);
    EXPECT(pread(fd, buf, 5, 7) == 5);
    EXPECT(memcmp(buf, "WORLD", 5) == 0);
    EXPECT(pwrite(fd, "world", 5, 7) == 5);
    EXPECT(pread(fd, buf, 16, 100) == 0);
    EXPECT(pwrite(fd, "!", 1, 30) == 1);
    struct stat st;
    OK(fstat(fd, &st));
    EXPECT(st.st_size == 31);
    EXPECT(pread(fd, buf, 9, 22) == 9);
    EXPECT(memcmp(buf, "\0\0\0\0\0\0\0\0!", 9) == 0);
    OK(close(fd));
    return 1;
}

static int c_fd_flags(void) {
    int fd = open(p("a.txt"), O_RDONLY);
    EXPECT(fd >= 0);
    EXPECT((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
    FAILS(write(fd, "x", 1), EBADF);
    OK(posix_fadvise(fd, 0, 10, POSIX_FADV_SEQUENTIAL));
    OK(fsync(fd));
    OK(fdatasync(fd));
    OK(close(fd));
    fd = open(p("a.txt"), O_WRONLY);
    EXPECT(fd >= 0);
    EXPECT((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY);
    char c;
    FAILS(read(fd, &c, 1), EBADF);
    OK(close(fd));
    return 1;
}

static int c_ftruncate(void) {
    char buf[64];
    int fd = open(p("a.txt"), O_RDWR);
    EXPECT(fd >= 0);
    OK(ftruncate(fd, 5));
    EXPECT(get(p("a.txt"), buf, sizeof buf) == 5);
    EXPECT(strcmp(buf, "hello") == 0);
    OK(ftruncate(fd, 8));
    struct stat st;
    OK(fstat(fd, &st));
    EXPECT(st.st_size == 8);
    OK(close(fd));
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    EXPECT(dir >= 0);
    FAILS(ftruncate(dir, 0), EBADF);
    OK(close(dir));
    return 1;
}

static int c_open_flags(void) {
    int fd = open(p("new.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    EXPECT(fd >= 0);
    OK(close(fd));
    FAILS(open(p("new.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
    FAILS(open(p("missing"), O_RDONLY), ENOENT);
    FAILS(open(p("a.txt"), O_RDONLY | O_DIRECTORY), ENOTDIR);
    FAILS(open(p("a.txt/x"), O_RDONLY), ENOTDIR);
    OK(mkdir(p("d"), 0755));
    FAILS(open(p("d"), O_WRONLY), EISDIR);
    OK(put(p("t.txt"), "truncate me"));
    fd = open(p("t.txt"), O_WRONLY | O_TRUNC);
    EXPECT(fd >= 0);
    OK(close(fd));
    struct stat st;
    OK(stat(p("t.txt"), &st));
    EXPECT(st.st_size == 0);
    return 1;
}

static int c_stat(void) {
    struct stat st, lst, fst;
    OK(stat(p("a.txt"), &st));
    EXPECT(S_ISREG(st.st_mode));
    EXPECT(st.st_size == 8);
    EXPECT(st.st_nlink == 1);
    EXPECT(time(NULL) - st.st_mtim.tv_sec < 60);
    int fd = open(p("a.txt"), O_RDONLY);
    EXPECT(fd >= 0);
    OK(fstat(fd, &fst));
    OK(close(fd));
    EXPECT(fst.st_ino == st.st_ino && fst.st_dev == st.st_dev);
    OK(stat(p("d"), &st));
    EXPECT(S_ISDIR(st.st_mode));
    OK(lstat(p("a.txt"), &lst));
    EXPECT(S_ISREG(lst.st_mode));
    FAILS(stat(p("missing"), &st), ENOENT);
    FAILS(stat(p("a.txt/"), &st), ENOTDIR);
    return 1;
}

static int c_times(void) {
    struct timespec times[2] = {{1500000000, 0}, {1000000000, 123456789}};
    OK(utimensat(AT_FDCWD, p("a.txt"), times, 0));
    struct stat st;
    OK(stat(p("a.txt"), &st));
    EXPECT(st.st_mtim.tv_sec == 1000000000 && st.st_mtim.tv_nsec == 123456789);
    EXPECT(st.st_atim.tv_sec == 1500000000);
    struct timespec keep_atime[2] = {{0, UTIME_OMIT}, {2000000000, 0}};
    int fd = open(p("a.txt"), O_WRONLY);
    EXPECT(fd >= 0);
    OK(futimens(fd, keep_atime));
    OK(close(fd));
    OK(stat(p("a.txt"), &st));
    EXPECT(st.st_mtim.tv_sec == 2000000000 && st.st_atim.tv_sec == 1500000000);
    /* No "now" here: Debian's wasi-libc (2022) asks the preview1 adapter
     * for the epoch instead (NULL) or for EINVAL (UTIME_NOW). */
    FAILS(utimensat(AT_FDCWD, p("missing"), times, 0), ENOENT);
    return 1;
}

static int c_readdir(void) {
    OK(mkdir(p("d/sub"), 0755));
    OK(put(p("d/f1"), "1"));
    OK(put(p("d/f2"), "2"));
    DIR *dir = opendir(p("d"));
    EXPECT(dir != NULL);
    int files = 0, dirs = 0, dots = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            dots++;
        else if (entry->d_type == DT_DIR && strcmp(entry->d_name, "sub") == 0)
            dirs++;
        else if (entry->d_type == DT_REG && entry->d_name[0] == 'f')
            files++;
        else
            return fail("unexpected entry %s (type %d)", entry->d_name, entry->d_type);
    }
    OK(closedir(dir));
    EXPECT(files == 2 && dirs == 1);
    EXPECT(opendir(p("a.txt")) == NULL && errno == ENOTDIR);
    EXPECT(opendir(p("missing")) == NULL && errno == ENOENT);
    return 1;
}

static int c_unlinkat_dirfd(void) {
    /* Mutating through a directory opened read-only, as POSIX allows. */
    DIR *dir = opendir(p("d"));
    EXPECT(dir != NULL);
    int fd = dirfd(dir);
    OK(unlinkat(fd, "f2", 0));
    OK(mkdirat(fd, "made", 0755));
    OK(unlinkat(fd, "made", AT_REMOVEDIR));
    int f = openat(fd, "f3", O_WRONLY | O_CREAT, 0644);
    EXPECT(f >= 0);
    OK(close(f));
    OK(closedir(dir));
    struct stat st;
    FAILS(stat(p("d/f2"), &st), ENOENT);
    OK(stat(p("d/f3"), &st));
    return 1;
}

static int c_rmdir_unlink(void) {
    struct stat st;
    FAILS(rmdir(p("d")), ENOTEMPTY);
    FAILS(rmdir(p("a.txt")), ENOTDIR);
    FAILS(rmdir(p("missing")), ENOENT);
    FAILS(unlink(p("d")), EISDIR);
    FAILS(unlink(p("missing")), ENOENT);
    OK(unlink(p("d/f1")));
    OK(unlink(p("d/f3")));
    OK(rmdir(p("d/sub")));
    FAILS(stat(p("d/sub"), &st), ENOENT);
    OK(put(p("tmp"), "still here"));
    int fd = open(p("tmp"), O_RDONLY);
    EXPECT(fd >= 0);
    OK(unlink(p("tmp")));
    char buf[16] = {0};
    EXPECT(read(fd, buf, sizeof buf) == 10);
    EXPECT(strcmp(buf, "still here") == 0);
    OK(close(fd));
    return 1;
}

static int c_rename(void) {
    char buf[16];
    struct stat st;
    OK(put(p("r1"), "one"));
    OK(put(p("r2"), "two"));
    OK(rename(p("r1"), p("r2")));
    FAILS(stat(p("r1"), &st), ENOENT);
    EXPECT(get(p("r2"), buf, sizeof buf) == 3 && strcmp(buf, "one") == 0);
    OK(rename(p("r2"), p("d/r")));
    OK(mkdir(p("full"), 0755));
    OK(put(p("full/x"), "x"));
    OK(mkdir(p("empty"), 0755));
    FAILS(rename(p("d"), p("full")), ENOTEMPTY);
    FAILS(rename(p("a.txt"), p("full")), EISDIR);
    FAILS(rename(p("full"), p("a.txt")), ENOTDIR);
    FAILS(rename(p("d"), p("d/inside")), EINVAL);
    FAILS(rename(p("missing"), p("x")), ENOENT);
    OK(rename(p("d"), p("empty")));
    EXPECT(get(p("empty/r"), buf, sizeof buf) == 3);
    return 1;
}

static int c_link(void) {
    char buf[16];
    struct stat a, b;
    OK(put(p("orig"), "shared"));
    OK(link(p("orig"), p("hard")));
    OK(stat(p("orig"), &a));
    OK(stat(p("hard"), &b));
    EXPECT(a.st_nlink == 2 && b.st_nlink == 2);
    EXPECT(a.st_ino == b.st_ino);
    FAILS(link(p("orig"), p("a.txt")), EEXIST);
    FAILS(link(p("full"), p("dirlink")), EPERM);
    FAILS(link(p("missing"), p("x")), ENOENT);
    OK(symlink("orig", p("symorig")));
    FAILS(linkat(AT_FDCWD, p("symorig"), AT_FDCWD, p("x"), AT_SYMLINK_FOLLOW), EINVAL);
    OK(unlink(p("orig")));
    EXPECT(get(p("hard"), buf, sizeof buf) == 6 && strcmp(buf, "shared") == 0);
    OK(stat(p("hard"), &b));
    EXPECT(b.st_nlink == 1);
    return 1;
}

static int c_symlink(void) {
    char buf[64];
    struct stat st;
    OK(symlink("hard", p("sym")));
    ssize_t n = readlink(p("sym"), buf, sizeof buf);
    EXPECT(n == 4 && memcmp(buf, "hard", 4) == 0);
    OK(lstat(p("sym"), &st));
    EXPECT(S_ISLNK(st.st_mode));
    OK(stat(p("sym"), &st));
    EXPECT(S_ISREG(st.st_mode) && st.st_size == 6);
    EXPECT(get(p("sym"), buf, sizeof buf) == 6);
    FAILS(symlink("x", p("sym")), EEXIST);
    FAILS(readlink(p("hard"), buf, sizeof buf), EINVAL);
    OK(symlink("nowhere", p("dangling")));
    FAILS(stat(p("dangling"), &st), ENOENT);
    OK(lstat(p("dangling"), &st));
    OK(symlink("loop2", p("loop1")));
    OK(symlink("loop1", p("loop2")));
    FAILS(open(p("loop1"), O_RDONLY), ELOOP);
    FAILS(stat(p("loop1/x"), &st), ELOOP);
    FAILS(open(p("sym"), O_RDONLY | O_NOFOLLOW), ELOOP);
    return 1;
}

static int c_escape(void) {
    struct stat st;
    char path[1024];
    FAILS(symlink("/", p("root")), EPERM);
    FAILS(symlink("/etc/passwd", p("passwd")), EPERM);
    snprintf(path, sizeof path, "../../../../../../../../../../etc/passwd");
    OK(symlink(path, p("climb")));
    FAILS(open(p("climb"), O_RDONLY), EPERM);
    FAILS(stat(p("climb"), &st), EPERM);
    OK(lstat(p("climb"), &st));
    snprintf(path, sizeof path, "%s/../../../../../../../../../../etc/passwd", base);
    FAILS(open(path, O_RDONLY), EPERM);
    snprintf(path, sizeof path, "%s/../../../../../../../../../../escaped", base);
    FAILS(mkdir(path, 0755), EPERM);
    return 1;
}

/* Removes everything the checks made, bottom up, then the directory itself. */
static int c_cleanup(void) {
    const char *files[] = {"a.txt", "new.txt", "t.txt", "empty/r", "full/x", "hard", "sym",
                           "symorig", "dangling", "loop1", "loop2", "climb"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        OK(unlink(p(files[i])));
    OK(rmdir(p("empty")));
    OK(rmdir(p("full")));
    OK(rmdir(base));
    struct stat st;
    FAILS(stat(base, &st), ENOENT);
    return 1;
}

static int ro_read(void) {
    char buf[16];
    EXPECT(get(p("seed.txt"), buf, sizeof buf) == 5 && strcmp(buf, "seed\n") == 0);
    int fd = open(p("seed.txt"), O_RDONLY);
    EXPECT(fd >= 0);
    EXPECT(pread(fd, buf, 4, 0) == 4);
    OK(close(fd));
    return 1;
}

static int ro_write(void) {
    EXPECT(fopen(p("seed.txt"), "w") == NULL && errno == EROFS);
    EXPECT(fopen(p("seed.txt"), "a") == NULL && errno == EROFS);
    FAILS(open(p("new"), O_WRONLY | O_CREAT, 0644), EROFS);
    FAILS(mkdir(p("d"), 0755), EROFS);
    FAILS(unlink(p("seed.txt")), EROFS);
    FAILS(rename(p("seed.txt"), p("x")), EROFS);
    FAILS(link(p("seed.txt"), p("x")), EROFS);
    FAILS(symlink("seed.txt", p("x")), EROFS);
    struct timespec times[2] = {{1, 0}, {2, 0}};
    FAILS(utimensat(AT_FDCWD, p("seed.txt"), times, 0), EROFS);
    return 1;
}

static char ones[6000], twos[4500];

static int q_fits(void) {
    memset(ones, 1, sizeof ones);
    memset(twos, 2, sizeof twos);
    int fd = open(p("q.bin"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT(fd >= 0);
    EXPECT(write(fd, ones, 4000) == 4000);
    EXPECT(write(fd, ones, 2000) == 2000);
    OK(close(fd));
    return 1;
}

static int q_refused(void) {
    int fd = open(p("q.bin"), O_WRONLY | O_APPEND);
    EXPECT(fd >= 0);
    /* Under 4096 bytes: the adapter makes one stream write of it. */
    FAILS(write(fd, twos, 4095), ENOSPC);
    OK(close(fd));
    fd = open(p("q.bin"), O_WRONLY);
    EXPECT(fd >= 0);
    FAILS(pwrite(fd, twos, 4500, 8000), ENOSPC);
    EXPECT(lseek(fd, 7000, SEEK_SET) == 7000);
    FAILS(write(fd, twos, 3500), ENOSPC);
    FAILS(ftruncate(fd, 20000), ENOSPC);
    OK(close(fd));
    /* Buffered whole, so the flush is one write that fails whole. */
    FILE *f = fopen(p("q.bin"), "a");
    EXPECT(f != NULL);
    static char buffer[8192];
    OK(setvbuf(f, buffer, _IOFBF, sizeof buffer));
    EXPECT(fwrite(twos, 1, 4095, f) == 4095);
    EXPECT(fflush(f) == EOF && errno == ENOSPC);
    fclose(f);
    return 1;
}

static int q_not_half_applied(void) {
    static char back[7000];
    struct stat st;
    OK(stat(p("q.bin"), &st));
    EXPECT(st.st_size == 6000);
    EXPECT(get(p("q.bin"), back, sizeof back) == 6000);
    EXPECT(memcmp(back, ones, 6000) == 0);
    return 1;
}

static int q_inodes(void) {
    char name[32];
    int made = 0;
    for (;;) {
        snprintf(name, sizeof name, "d%d", made);
        if (mkdir(p(name), 0755) != 0)
            break;
        if (++made > 100)
            return fail("no inode limit");
    }
    EXPECT(errno == ENOSPC);
    printf("created %d directories\n", made);
    FAILS(open(p("one-more"), O_WRONLY | O_CREAT, 0644), ENOSPC);
    FAILS(symlink("q.bin", p("lnk")), ENOSPC);
    OK(unlink(p("q.bin")));
    int fd = open(p("again.bin"), O_WRONLY | O_CREAT, 0644);
    EXPECT(fd >= 0);
    EXPECT(pwrite(fd, twos, 4500, 0) == 4500);
    OK(close(fd));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fs-conformance all|read-only|quota DIR\n");
        return 2;
    }
    if (strcmp(argv[1], "all") == 0) {
        snprintf(base, sizeof base, "%s/%s", strcmp(argv[2], "/") == 0 ? "" : argv[2], argv[0]);
        check("c-mkdir", c_mkdir);
        check("c-stdio", c_stdio);
        check("c-append", c_append);
        check("c-pread-pwrite", c_pread_pwrite);
        check("c-fd-flags", c_fd_flags);
        check("c-ftruncate", c_ftruncate);
        check("c-open-flags", c_open_flags);
        check("c-stat", c_stat);
        check("c-times", c_times);
        check("c-readdir", c_readdir);
        check("c-unlinkat-dirfd", c_unlinkat_dirfd);
        check("c-rmdir-unlink", c_rmdir_unlink);
        check("c-rename", c_rename);
        check("c-link", c_link);
        check("c-symlink", c_symlink);
        check("c-escape", c_escape);
        check("c-cleanup", c_cleanup);
    } else if (strcmp(argv[1], "read-only") == 0) {
        snprintf(base, sizeof base, "%s", argv[2]);
        check("c-ro-read", ro_read);
        check("c-ro-write", ro_write);
    } else if (strcmp(argv[1], "quota") == 0) {
        snprintf(base, sizeof base, "%s", strcmp(argv[2], "/") == 0 ? "" : argv[2]);
        check("c-quota-fits", q_fits);
        check("c-quota-refused", q_refused);
        check("c-quota-not-half-applied", q_not_half_applied);
        check("c-quota-inodes", q_inodes);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
