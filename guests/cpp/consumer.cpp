// Takes messages from a queue until an empty stop message or the queue is
// closed, marking each done and checking that each producer's messages
// arrive in order, then prints `consumed N messages (checksum X), K out of
// order` and reports `consumed N SUM` on the `results` queue if the run has
// one. Args: QUEUE.
#include <cinttypes>
#include <cstdio>
#include <string>
#include <unordered_map>

#include "corral.hpp"
#include "worker.h"

namespace {

/// An open queue, dropped (closed for this worker) with the object.
class Queue {
  public:
    static std::optional<Queue> open(const std::string &name, corral_worker_queue_error_t *err) {
        worker_string_t wit_name{(uint8_t *)name.data(), name.size()};
        corral_worker_queue_own_queue_t own;
        if (!corral_worker_queue_static_queue_open(&wit_name, &own, err)) return std::nullopt;
        return Queue(own);
    }
    Queue(Queue &&other) noexcept : own_(other.own_) { other.own_.__handle = 0; }
    Queue(const Queue &) = delete;
    ~Queue() {
        if (own_.__handle != 0) corral_worker_queue_queue_drop_own(own_);
    }

    /// The next message, or nothing once the queue is closed and drained.
    std::optional<std::string> get() {
        worker_list_u8_t message;
        corral_worker_queue_error_t err;
        if (!corral_worker_queue_method_queue_get(borrow(), nullptr, &message, &err)) {
            if (err.tag == CORRAL_WORKER_TYPES_ERROR_CLOSED) return std::nullopt;
            corral::die("get", corral_error_name(err.tag));
        }
        std::string text(reinterpret_cast<const char *>(message.ptr), message.len);
        worker_list_u8_free(&message);
        if (!corral_worker_queue_method_queue_task_done(borrow(), &err)) {
            corral::die("task-done", corral_error_name(err.tag));
        }
        return text;
    }

    void put(const std::string &message) {
        worker_list_u8_t bytes{(uint8_t *)message.data(), message.size()};
        corral_worker_queue_error_t err;
        if (!corral_worker_queue_method_queue_put(borrow(), &bytes, nullptr, &err)) {
            corral::die("put", corral_error_name(err.tag));
        }
    }

  private:
    explicit Queue(corral_worker_queue_own_queue_t own) : own_(own) {}
    corral_worker_queue_borrow_queue_t borrow() { return corral_worker_queue_borrow_queue(own_); }
    corral_worker_queue_own_queue_t own_;
};

}  // namespace

bool exports_wasi_cli_run_run(void) {
    corral_worker_queue_error_t err;
    auto jobs = Queue::open(corral::arg(1, "jobs"), &err);
    if (!jobs) corral::die("open queue", corral_error_name(err.tag));
    std::unordered_map<std::string, std::uint64_t> last_seen;
    std::uint64_t count = 0, sum = 0, out_of_order = 0;
    while (auto message = jobs->get()) {
        if (message->empty()) break;
        count++;
        sum += corral::fnv1a(*message);
        auto colon = message->rfind(':');
        if (colon != std::string::npos && colon + 1 < message->size() &&
            message->find_first_not_of("0123456789", colon + 1) == std::string::npos) {
            auto seq = std::strtoull(message->c_str() + colon + 1, nullptr, 10);
            auto [seen, fresh] = last_seen.try_emplace(message->substr(0, colon), seq);
            if (!fresh) {
                out_of_order += seq <= seen->second;
                seen->second = seq;
            }
        }
    }
    if (auto results = Queue::open("results", &err)) {
        results->put("consumed " + std::to_string(count) + " " + std::to_string(sum));
    } else {
        corral_worker_types_error_free(&err);
    }
    std::printf("consumed %" PRIu64 " messages (checksum %016" PRIx64 "), %" PRIu64
                " out of order\n",
                count, sum, out_of_order);
    return true;
}
