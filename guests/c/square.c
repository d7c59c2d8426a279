/* The classic pool task: a decimal integer in, its square out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_task.h"

static bool fail(pool_task_string_t *err, const char *message) {
    pool_task_string_dup(err, message);
    return false;
}

bool exports_corral_worker_task_handle(pool_task_list_u8_t *input, pool_task_list_u8_t *ret,
                                       pool_task_string_t *err) {
    char text[64];
    if (input->len == 0 || input->len >= sizeof text) {
        pool_task_list_u8_free(input);
        return fail(err, "not an integer");
    }
    memcpy(text, input->ptr, input->len);
    text[input->len] = '\0';
    pool_task_list_u8_free(input);
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
    if (end == text || *end != '\0') return fail(err, "not an integer");
    if (errno == ERANGE) return fail(err, "out of the i64 range");
    long long squared;
    if (__builtin_mul_overflow(x, x, &squared)) return fail(err, "squared overflows i64");
    char out[32];
    int n = snprintf(out, sizeof out, "%lld", squared);
    ret->ptr = malloc((size_t)n);
    if (ret->ptr == NULL) return fail(err, "out of memory");
    memcpy(ret->ptr, out, (size_t)n);
    ret->len = (size_t)n;
    return true;
}
