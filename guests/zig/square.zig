//! The classic pool task: a decimal integer in, its square out.
const std = @import("std");
const c = @import("c");

fn fail(err: *c.pool_task_string_t, message: [*:0]const u8) bool {
    c.pool_task_string_dup(err, message);
    return false;
}

export fn exports_corral_worker_task_handle(
    input: *c.pool_task_list_u8_t,
    ret: *c.pool_task_list_u8_t,
    err: *c.pool_task_string_t,
) bool {
    defer c.pool_task_list_u8_free(input);
    const text = std.mem.trim(u8, input.ptr[0..input.len], " \t\r\n");
    const x = std.fmt.parseInt(i64, text, 10) catch |e| return switch (e) {
        error.Overflow => fail(err, "out of the i64 range"),
        error.InvalidCharacter => fail(err, "not an integer"),
    };
    const squared = std.math.mul(i64, x, x) catch return fail(err, "squared overflows i64");
    var buffer: [24]u8 = undefined;
    const digits = std.fmt.bufPrint(&buffer, "{d}", .{squared}) catch unreachable;
    const out: [*]u8 = @ptrCast(c.malloc(digits.len) orelse return fail(err, "out of memory"));
    @memcpy(out[0..digits.len], digits);
    ret.* = .{ .ptr = out, .len = digits.len };
    return true;
}
