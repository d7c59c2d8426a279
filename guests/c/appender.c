/*
 * Appends N lines to a shared file, the classic way: open for writing, seek
 * to the end, write the line in two writes (as buffered I/O may). Under the
 * lock that is safe; without it (LOCK = `-`) workers overwrite each other's
 * lines. Each line is `<name>:<seq>:<check>`, check a hash of the rest, so
 * guests/rust/linecheck can tell intact lines from torn ones.
 * Args: PATH LOCK N.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corral_util.h"
#include "worker.h"

/* Argument `n` as a C string (owned by the caller), or a copy of `fallback`. */
static char *arg(const worker_list_string_t *args, size_t n, const char *fallback) {
    if (n >= args->len) return strdup(fallback);
    return strndup((const char *)args->ptr[n].ptr, args->ptr[n].len);
}

static int write_all(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0) return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

bool exports_wasi_cli_run_run(void) {
    worker_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    char *path = arg(&args, 1, "/log.txt");
    char *lock_name = arg(&args, 2, "file");
    char *count = arg(&args, 3, "100");
    long n = strtol(count, NULL, 10);
    worker_list_string_free(&args);

    worker_string_t me;
    corral_worker_process_name(&me);

    corral_worker_lock_own_lock_t lock;
    corral_worker_lock_error_t err;
    bool locked = strcmp(lock_name, "-") != 0;
    if (locked) {
        worker_string_t name;
        worker_string_set(&name, lock_name);
        if (!corral_worker_lock_static_lock_open(&name, &lock, &err)) {
            fprintf(stderr, "open lock: %s\n", corral_error_name(err.tag));
            wasi_cli_exit_exit_with_code(2);
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
        perror(path);
        wasi_cli_exit_exit_with_code(2);
    }
    for (long i = 0; i < n; i++) {
        char body[128], line[160];
        snprintf(body, sizeof body, "%.*s:%06ld", (int)me.len, (const char *)me.ptr, i);
        int len = snprintf(line, sizeof line, "%s:%016" PRIx64 "\n", body,
                           corral_fnv1a((const uint8_t *)body, strlen(body)));
        corral_worker_lock_own_guard_t guard;
        if (locked &&
            !corral_worker_lock_method_lock_acquire(corral_worker_lock_borrow_lock(lock), NULL,
                                                    &guard, &err)) {
            fprintf(stderr, "acquire: %s\n", corral_error_name(err.tag));
            wasi_cli_exit_exit_with_code(2);
        }
        int half = len / 2;
        if (lseek(fd, 0, SEEK_END) < 0 || write_all(fd, line, (size_t)half) < 0 ||
            write_all(fd, line + half, (size_t)(len - half)) < 0) {
            perror("append");
            wasi_cli_exit_exit_with_code(1);
        }
        /* Dropping the guard releases the lock. */
        if (locked) corral_worker_lock_guard_drop_own(guard);
    }
    close(fd);
    printf("appended %ld lines to %s\n", n, path);
    free(path);
    free(lock_name);
    free(count);
    worker_string_free(&me);
    return true;
}
