/*
 * Takes messages from a queue until an empty stop message or the queue is
 * closed, marking each done, then prints `consumed N messages (checksum X),
 * K out of order` and reports `consumed N SUM` on the `results` queue if
 * the run has one. Messages `<producer>:<seq>` must arrive in order per
 * producer. Args: QUEUE.
 *
 * A wasm32-wasi reactor core module: it exports wasi:cli/run through its
 * bindings (bindings/worker), and Corral adapts it into a component with
 * the preview1 reactor adapter when it loads it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corral_util.h"
#include "worker.h"

#define MAX_PRODUCERS 64

typedef corral_worker_queue_borrow_queue_t queue_t;

struct producer {
    char name[64];
    uint64_t last;
};

static struct producer producers[MAX_PRODUCERS];
static size_t producer_count;

/* Whether `message` (`<producer>:<seq>`) arrived after a later one of its
 * producer. */
static int out_of_order(const uint8_t *message, size_t len) {
    const uint8_t *colon = NULL;
    for (size_t i = 0; i < len; i++) {
        if (message[i] == ':') colon = message + i;
    }
    size_t name_len = colon ? (size_t)(colon - message) : 0;
    if (!colon || name_len >= sizeof producers[0].name || colon + 1 == message + len) return 0;
    uint64_t seq = 0;
    for (const uint8_t *p = colon + 1; p < message + len; p++) {
        if (*p < '0' || *p > '9') return 0;
        seq = seq * 10 + (uint64_t)(*p - '0');
    }
    for (size_t i = 0; i < producer_count; i++) {
        struct producer *known = &producers[i];
        if (strlen(known->name) == name_len && memcmp(known->name, message, name_len) == 0) {
            int late = seq <= known->last;
            known->last = seq;
            return late;
        }
    }
    if (producer_count < MAX_PRODUCERS) {
        memcpy(producers[producer_count].name, message, name_len);
        producers[producer_count].name[name_len] = '\0';
        producers[producer_count].last = seq;
        producer_count++;
    }
    return 0;
}

static void report(uint64_t count, uint64_t sum) {
    worker_string_t name;
    corral_worker_queue_own_queue_t results;
    corral_worker_queue_error_t err;
    worker_string_set(&name, "results");
    if (!corral_worker_queue_static_queue_open(&name, &results, &err)) {
        corral_worker_types_error_free(&err);
        return;
    }
    char text[64];
    int n = snprintf(text, sizeof text, "consumed %" PRIu64 " %" PRIu64, count, sum);
    worker_list_u8_t message = {(uint8_t *)text, (size_t)n};
    if (!corral_worker_queue_method_queue_put(corral_worker_queue_borrow_queue(results), &message,
                                              NULL, &err)) {
        fprintf(stderr, "report: %s\n", corral_error_name(err.tag));
        corral_worker_types_error_free(&err);
    }
    corral_worker_queue_queue_drop_own(results);
}

bool exports_wasi_cli_run_run(void) {
    worker_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    worker_string_t name;
    if (args.len > 1) {
        name = args.ptr[1];
    } else {
        worker_string_set(&name, "jobs");
    }
    corral_worker_queue_own_queue_t own;
    corral_worker_queue_error_t err;
    if (!corral_worker_queue_static_queue_open(&name, &own, &err)) {
        fprintf(stderr, "open queue: %s\n", corral_error_name(err.tag));
        wasi_cli_exit_exit_with_code(2);
    }
    worker_list_string_free(&args);
    queue_t jobs = corral_worker_queue_borrow_queue(own);
    uint64_t count = 0, sum = 0, late = 0;
    for (;;) {
        worker_list_u8_t message;
        if (!corral_worker_queue_method_queue_get(jobs, NULL, &message, &err)) {
            if (err.tag == CORRAL_WORKER_TYPES_ERROR_CLOSED) break;
            fprintf(stderr, "get: %s\n", corral_error_name(err.tag));
            wasi_cli_exit_exit_with_code(2);
        }
        if (!corral_worker_queue_method_queue_task_done(jobs, &err)) {
            fprintf(stderr, "task-done: %s\n", corral_error_name(err.tag));
            wasi_cli_exit_exit_with_code(2);
        }
        if (message.len == 0) break;
        count++;
        sum += corral_fnv1a(message.ptr, message.len);
        late += (uint64_t)out_of_order(message.ptr, message.len);
        worker_list_u8_free(&message);
    }
    corral_worker_queue_queue_drop_own(own);
    report(count, sum);
    printf("consumed %" PRIu64 " messages (checksum %016" PRIx64 "), %" PRIu64 " out of order\n",
           count, sum, late);
    return true;
}
