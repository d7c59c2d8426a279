// The classic pool task: a decimal integer in, its square out.
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "pool_task.h"

namespace {

bool fail(pool_task_string_t *err, const std::string &message) {
    pool_task_string_dup(err, message.c_str());
    return false;
}

std::string_view trim(std::string_view text) {
    auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

bool exports_corral_worker_task_handle(pool_task_list_u8_t *input, pool_task_list_u8_t *ret,
                                       pool_task_string_t *err) {
    std::string owned(reinterpret_cast<const char *>(input->ptr), input->len);
    pool_task_list_u8_free(input);
    auto text = trim(owned);
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    long long x = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
    if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
        return fail(err, "not an integer: \"" + owned + "\"");
    }
    if (ec == std::errc::result_out_of_range) return fail(err, owned + " is out of the i64 range");
    long long squared;
    if (__builtin_mul_overflow(x, x, &squared)) {
        return fail(err, std::to_string(x) + " squared overflows i64");
    }
    auto out = std::to_string(squared);
    ret->ptr = static_cast<uint8_t *>(std::malloc(out.size()));
    if (ret->ptr == nullptr) return fail(err, "out of memory");
    std::memcpy(ret->ptr, out.data(), out.size());
    ret->len = out.size();
    return true;
}
