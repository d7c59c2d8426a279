//! Appends N lines to a shared file, the classic way: open for writing, seek
//! to the end, write the line in two writes (as buffered I/O may). Under the
//! lock that is safe; without it (LOCK = `-`) workers overwrite each other's
//! lines. Each line is `<name>:<seq>:<check>`, check a hash of the rest, so
//! guests/rust/linecheck can tell intact lines from torn ones.
//! Args: PATH LOCK N.
const std = @import("std");
const c = @import("c");

fn fatal(what: [*:0]const u8, why: [*:0]const u8, code: u8) noreturn {
    _ = c.fprintf(c.stderr, "%s: %s\n", what, why);
    c.wasi_cli_exit_exit_with_code(code);
    unreachable;
}

fn arg(args: c.worker_list_string_t, n: usize, fallback: []const u8) []const u8 {
    return if (n < args.len) args.ptr[n].ptr[0..args.ptr[n].len] else fallback;
}

fn writeAll(fd: c_int, bytes: []const u8) bool {
    var rest = bytes;
    while (rest.len > 0) {
        const n = c.write(fd, rest.ptr, rest.len);
        if (n < 0) return false;
        rest = rest[@intCast(n)..];
    }
    return true;
}

export fn exports_wasi_cli_run_run() bool {
    var args: c.worker_list_string_t = undefined;
    c.wasi_cli_environment_get_arguments(&args);
    defer c.worker_list_string_free(&args);
    var path_buffer: [1024]u8 = undefined;
    const path = std.fmt.bufPrintSentinel(&path_buffer, "{s}", .{arg(args, 1, "/log.txt")}, 0) catch
        fatal("path", "too long", 2);
    const lock_name = arg(args, 2, "file");
    const n = std.fmt.parseInt(u32, arg(args, 3, "100"), 10) catch fatal("N", "not a number", 2);
    var me: c.worker_string_t = undefined;
    c.corral_worker_process_name(&me);
    defer c.worker_string_free(&me);

    var err: c.corral_worker_lock_error_t = undefined;
    var lock: ?c.corral_worker_lock_own_lock_t = null;
    if (!std.mem.eql(u8, lock_name, "-")) {
        var wit_name = c.worker_string_t{ .ptr = @constCast(lock_name.ptr), .len = lock_name.len };
        var own: c.corral_worker_lock_own_lock_t = undefined;
        if (!c.corral_worker_lock_static_lock_open(&wit_name, &own, &err))
            fatal("open lock", c.corral_error_name(err.tag), 2);
        lock = own;
    }
    const fd = c.open(path.ptr, c.O_WRONLY | c.O_CREAT, @as(c_int, 0o644));
    if (fd < 0) fatal(path.ptr, "cannot open", 2);
    defer _ = c.close(fd);
    var i: u32 = 0;
    while (i < n) : (i += 1) {
        var body_buffer: [128]u8 = undefined;
        const body = std.fmt.bufPrint(&body_buffer, "{s}:{d:0>6}", .{ me.ptr[0..me.len], i }) catch
            fatal("name", "too long", 2);
        var line_buffer: [160]u8 = undefined;
        const line = std.fmt.bufPrint(&line_buffer, "{s}:{x:0>16}\n", .{ body, c.corral_fnv1a(body.ptr, body.len) }) catch unreachable;
        var guard: c.corral_worker_lock_own_guard_t = undefined;
        if (lock) |held| {
            if (!c.corral_worker_lock_method_lock_acquire(c.corral_worker_lock_borrow_lock(held), null, &guard, &err))
                fatal("acquire", c.corral_error_name(err.tag), 2);
        }
        const half = line.len / 2;
        if (c.lseek(fd, 0, c.SEEK_END) < 0 or !writeAll(fd, line[0..half]) or !writeAll(fd, line[half..]))
            fatal("append", "write failed", 1);
        // Dropping the guard releases the lock.
        if (lock != null) c.corral_worker_lock_guard_drop_own(guard);
    }
    if (lock) |held| c.corral_worker_lock_lock_drop_own(held);
    _ = c.printf("appended %u lines to %s\n", n, path.ptr);
    return true;
}
