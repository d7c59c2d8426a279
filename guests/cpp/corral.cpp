// The world-independent parts of corral.hpp, for worker-world guests.
#include "corral.hpp"

#include <cstdio>

#include "worker.h"

namespace corral {

std::vector<std::string> args() {
    worker_list_string_t list;
    wasi_cli_environment_get_arguments(&list);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < list.len; i++) {
        out.emplace_back(reinterpret_cast<const char *>(list.ptr[i].ptr), list.ptr[i].len);
    }
    worker_list_string_free(&list);
    return out;
}

void exit(std::uint8_t code) {
    std::fflush(stdout);
    wasi_cli_exit_exit_with_code(code);
    __builtin_unreachable();
}

void die(std::string_view what, std::string_view error) {
    std::fprintf(stderr, "%.*s: %.*s\n", int(what.size()), what.data(), int(error.size()),
                 error.data());
    exit(2);
}

}  // namespace corral
