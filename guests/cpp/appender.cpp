// Appends N lines to a shared file, the classic way: open for writing, seek
// to the end, write the line in two writes (as buffered I/O may), flushing
// each. Under the lock that is safe; without it (LOCK = `-`) workers
// overwrite each other's lines. Each line is `<name>:<seq>:<check>`, check a
// hash of the rest, so guests/rust/linecheck can tell intact lines from
// torn ones. Args: PATH LOCK N.
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string>

#include "corral.hpp"
#include "worker.h"

namespace {

/// Holds a named lock for its lifetime (RAII over the guard resource).
class LockGuard {
  public:
    explicit LockGuard(corral_worker_lock_borrow_lock_t lock) {
        corral_worker_lock_error_t err;
        if (!corral_worker_lock_method_lock_acquire(lock, nullptr, &guard_, &err)) {
            corral::die("acquire", corral_error_name(err.tag));
        }
    }
    LockGuard(const LockGuard &) = delete;
    ~LockGuard() { corral_worker_lock_guard_drop_own(guard_); }

  private:
    corral_worker_lock_own_guard_t guard_;
};

std::string process_name() {
    worker_string_t name;
    corral_worker_process_name(&name);
    std::string out(reinterpret_cast<const char *>(name.ptr), name.len);
    worker_string_free(&name);
    return out;
}

}  // namespace

bool exports_wasi_cli_run_run(void) {
    auto path = corral::arg(1, "/log.txt");
    auto lock_name = corral::arg(2, "file");
    long n = std::stol(corral::arg(3, "100"));
    auto me = process_name();
    std::optional<corral_worker_lock_own_lock_t> lock;
    if (lock_name != "-") {
        worker_string_t name{(uint8_t *)lock_name.data(), lock_name.size()};
        corral_worker_lock_own_lock_t own;
        corral_worker_lock_error_t err;
        if (!corral_worker_lock_static_lock_open(&name, &own, &err)) {
            corral::die("open lock", corral_error_name(err.tag));
        }
        lock = own;
    }
    // in|out: open for writing without truncating, like the other guests.
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    if (!file) {
        std::ofstream create(path, std::ios::app);
        file.open(path, std::ios::in | std::ios::out | std::ios::binary);
    }
    if (!file) corral::die("cannot open " + path, "open failed");
    for (long i = 0; i < n; i++) {
        char body[128];
        std::snprintf(body, sizeof body, "%s:%06ld", me.c_str(), i);
        char check[20];
        std::snprintf(check, sizeof check, ":%016" PRIx64 "\n", corral::fnv1a(body));
        std::string line = std::string(body) + check;
        std::optional<LockGuard> guard;
        if (lock) guard.emplace(corral_worker_lock_borrow_lock(*lock));
        auto half = line.size() / 2;
        file.seekp(0, std::ios::end);
        file.write(line.data(), std::streamsize(half)).flush();
        file.write(line.data() + half, std::streamsize(line.size() - half)).flush();
        if (!file) {
            std::fprintf(stderr, "append to %s failed\n", path.c_str());
            corral::exit(1);
        }
    }
    if (lock) corral_worker_lock_lock_drop_own(*lock);
    std::printf("appended %ld lines to %s\n", n, path.c_str());
    return true;
}
