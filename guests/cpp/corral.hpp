// A thin C++ layer over the C bindings (../c/bindings) that the C++ guests
// share: strings and byte lists as std types, errors as the error's name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "corral_util.h"

namespace corral {

/// The guest's arguments after argv[0], from wasi:cli (a reactor has no main).
std::vector<std::string> args();

/// Ends the worker with `code` as its exit status.
[[noreturn]] void exit(std::uint8_t code);

/// Prints `what: error` on stderr and ends the worker with exit code 2.
[[noreturn]] void die(std::string_view what, std::string_view error);

/// FNV-1a of a message, as every guest computes it.
inline std::uint64_t fnv1a(std::string_view bytes) {
    return corral_fnv1a(reinterpret_cast<const std::uint8_t *>(bytes.data()), bytes.size());
}

/// An argument, or `fallback` when absent.
inline std::string arg(std::size_t n, std::string fallback) {
    auto all = args();
    return n < all.size() ? all[n] : fallback;
}

}  // namespace corral
