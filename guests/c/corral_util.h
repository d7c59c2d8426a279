/*
 * Helpers the C, C++ and Zig guests share, mirroring the Rust SDK's
 * (guests/rust/sdk): FNV-1a and the names of Corral's error cases.
 * Header-only, so each guest compiles it with its own bindings.
 */
#ifndef CORRAL_UTIL_H
#define CORRAL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a of a message: summed (wrapping) over a set of messages, an
 * order-independent checksum that changes if any message is lost or
 * duplicated. */
static inline uint64_t corral_fnv1a(const uint8_t *bytes, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ bytes[i]) * 0x100000001b3ull;
    }
    return h;
}

/* The name of a corral:worker/types error case, by its tag. */
static inline const char *corral_error_name(uint8_t tag) {
    static const char *const names[] = {
        "timeout", "closed", "broken", "denied", "not-found", "too-large", "invalid",
    };
    return tag < sizeof names / sizeof names[0] ? names[tag] : "unknown error";
}

#endif
