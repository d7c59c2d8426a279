//! Takes messages from a queue until an empty stop message or the queue is
//! closed, marking each done and checking that each producer's messages
//! arrive in order, then prints `consumed N messages (checksum X), K out of
//! order` and reports `consumed N SUM` on the `results` queue if the run has
//! one. Args: QUEUE.
const std = @import("std");
const c = @import("c");

fn die(what: [*:0]const u8, err: c.corral_worker_types_error_t) noreturn {
    _ = c.fprintf(c.stderr, "%s: %s\n", what, c.corral_error_name(err.tag));
    c.wasi_cli_exit_exit_with_code(2);
    unreachable;
}

fn openQueue(name: []const u8, err: *c.corral_worker_queue_error_t) ?c.corral_worker_queue_own_queue_t {
    var wit_name = c.worker_string_t{ .ptr = @constCast(name.ptr), .len = name.len };
    var queue: c.corral_worker_queue_own_queue_t = undefined;
    if (!c.corral_worker_queue_static_queue_open(&wit_name, &queue, err)) return null;
    return queue;
}

/// Whether `message` (`<producer>:<seq>`) arrived after a later one of its
/// producer; remembers the latest sequence number of each producer.
fn outOfOrder(last_seen: *std.StringHashMapUnmanaged(u64), message: []const u8) bool {
    const colon = std.mem.lastIndexOfScalar(u8, message, ':') orelse return false;
    const seq = std.fmt.parseInt(u64, message[colon + 1 ..], 10) catch return false;
    const producer = message[0..colon];
    if (last_seen.getPtr(producer)) |last| {
        const late = seq <= last.*;
        last.* = seq;
        return late;
    }
    const key = std.heap.c_allocator.dupe(u8, producer) catch return false;
    last_seen.put(std.heap.c_allocator, key, seq) catch {};
    return false;
}

export fn exports_wasi_cli_run_run() bool {
    var args: c.worker_list_string_t = undefined;
    c.wasi_cli_environment_get_arguments(&args);
    defer c.worker_list_string_free(&args);
    const name: []const u8 = if (args.len > 1) args.ptr[1].ptr[0..args.ptr[1].len] else "jobs";
    var err: c.corral_worker_queue_error_t = undefined;
    const queue = openQueue(name, &err) orelse die("open queue", err);
    defer c.corral_worker_queue_queue_drop_own(queue);
    const jobs = c.corral_worker_queue_borrow_queue(queue);
    var last_seen: std.StringHashMapUnmanaged(u64) = .empty;
    var count: u64 = 0;
    var sum: u64 = 0;
    var late: u64 = 0;
    while (true) {
        var message: c.worker_list_u8_t = undefined;
        if (!c.corral_worker_queue_method_queue_get(jobs, null, &message, &err)) {
            if (err.tag == c.CORRAL_WORKER_TYPES_ERROR_CLOSED) break;
            die("get", err);
        }
        defer c.worker_list_u8_free(&message);
        if (!c.corral_worker_queue_method_queue_task_done(jobs, &err)) die("task-done", err);
        if (message.len == 0) break;
        const bytes = message.ptr[0..message.len];
        count += 1;
        sum +%= c.corral_fnv1a(bytes.ptr, bytes.len);
        if (outOfOrder(&last_seen, bytes)) late += 1;
    }
    if (openQueue("results", &err)) |results| {
        defer c.corral_worker_queue_queue_drop_own(results);
        var buffer: [64]u8 = undefined;
        const text = std.fmt.bufPrint(&buffer, "consumed {d} {d}", .{ count, sum }) catch unreachable;
        var report = c.worker_list_u8_t{ .ptr = text.ptr, .len = text.len };
        if (!c.corral_worker_queue_method_queue_put(c.corral_worker_queue_borrow_queue(results), &report, null, &err)) die("report", err);
    } else {
        c.corral_worker_types_error_free(&err);
    }
    _ = c.printf("consumed %llu messages (checksum %016llx), %llu out of order\n", count, sum, late);
    return true;
}
