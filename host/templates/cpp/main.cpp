// {{name}}: a Corral worker. With a QUEUE argument it takes messages from
// that queue until an empty stop message (or the queue is closed) and
// counts them; without, it says hello.
//
// A reactor (no `main`): Corral calls the wasi:cli/run export below.
#include <cstdio>
#include <string>

#include "worker.h"

namespace {

std::string take(worker_string_t &s) {
    std::string out(reinterpret_cast<const char *>(s.ptr), s.len);
    worker_string_free(&s);
    return out;
}

}  // namespace

bool exports_wasi_cli_run_run(void) {
    worker_string_t wit_name;
    corral_worker_process_name(&wit_name);
    std::string me = take(wit_name);
    worker_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    if (args.len < 2) {
        std::printf("hello from %s\n", me.c_str());
        return true;
    }
    corral_worker_queue_own_queue_t queue;
    corral_worker_queue_error_t err;
    if (!corral_worker_queue_static_queue_open(&args.ptr[1], &queue, &err)) {
        std::fprintf(stderr, "cannot open queue: error %d\n", err.tag);
        return false;
    }
    auto borrow = corral_worker_queue_borrow_queue(queue);
    unsigned long count = 0;
    worker_list_u8_t message;
    while (corral_worker_queue_method_queue_get(borrow, nullptr, &message, &err)) {
        corral_worker_queue_method_queue_task_done(borrow, &err);
        bool stop = message.len == 0;
        worker_list_u8_free(&message);
        if (stop) break;
        count++;
    }
    std::printf("%s took %lu messages\n", me.c_str(), count);
    corral_worker_queue_queue_drop_own(queue);
    worker_list_string_free(&args);
    return true;
}
