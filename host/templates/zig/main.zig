//! {{name}}: a Corral worker. With a QUEUE argument it takes messages from
//! that queue until an empty stop message (or the queue is closed) and
//! counts them; without, it says hello.
//!
//! A reactor (no `main`): Corral calls the wasi:cli/run export below.
const c = @import("c");

export fn exports_wasi_cli_run_run() bool {
    var me: c.worker_string_t = undefined;
    c.corral_worker_process_name(&me);
    defer c.worker_string_free(&me);
    var args: c.worker_list_string_t = undefined;
    c.wasi_cli_environment_get_arguments(&args);
    defer c.worker_list_string_free(&args);
    if (args.len < 2) {
        _ = c.printf("hello from %.*s\n", @as(c_int, @intCast(me.len)), me.ptr);
        return true;
    }
    var queue: c.corral_worker_queue_own_queue_t = undefined;
    var err: c.corral_worker_queue_error_t = undefined;
    if (!c.corral_worker_queue_static_queue_open(&args.ptr[1], &queue, &err)) {
        _ = c.fprintf(c.stderr, "cannot open queue: error %d\n", @as(c_int, err.tag));
        return false;
    }
    defer c.corral_worker_queue_queue_drop_own(queue);
    const borrow = c.corral_worker_queue_borrow_queue(queue);
    var count: c_ulong = 0;
    var message: c.worker_list_u8_t = undefined;
    while (c.corral_worker_queue_method_queue_get(borrow, null, &message, &err)) {
        _ = c.corral_worker_queue_method_queue_task_done(borrow, &err);
        const stop = message.len == 0;
        c.worker_list_u8_free(&message);
        if (stop) break;
        count += 1;
    }
    _ = c.printf("%.*s took %lu messages\n", @as(c_int, @intCast(me.len)), me.ptr, count);
    return true;
}
