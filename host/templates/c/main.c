/*
 * {{name}}: a Corral worker. With a QUEUE argument it takes messages from
 * that queue until an empty stop message (or the queue is closed) and
 * counts them; without, it says hello.
 *
 * A reactor (no `main`): Corral calls the wasi:cli/run export below.
 */
#include <stdio.h>
#include <stdlib.h>

#include "worker.h"

bool exports_wasi_cli_run_run(void) {
    worker_string_t me;
    corral_worker_process_name(&me);
    worker_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    if (args.len < 2) {
        printf("hello from %.*s\n", (int)me.len, (const char *)me.ptr);
        return true;
    }
    corral_worker_queue_own_queue_t queue;
    corral_worker_queue_error_t err;
    if (!corral_worker_queue_static_queue_open(&args.ptr[1], &queue, &err)) {
        fprintf(stderr, "cannot open queue: error %d\n", err.tag);
        return false;
    }
    unsigned long count = 0;
    for (;;) {
        worker_list_u8_t message;
        if (!corral_worker_queue_method_queue_get(corral_worker_queue_borrow_queue(queue), NULL,
                                                  &message, &err)) {
            break; /* closed */
        }
        corral_worker_queue_method_queue_task_done(corral_worker_queue_borrow_queue(queue), &err);
        size_t len = message.len;
        worker_list_u8_free(&message);
        if (len == 0) break; /* the stop message */
        count++;
    }
    printf("%.*s took %lu messages\n", (int)me.len, (const char *)me.ptr, count);
    corral_worker_queue_queue_drop_own(queue);
    worker_list_string_free(&args);
    worker_string_free(&me);
    return true;
}
