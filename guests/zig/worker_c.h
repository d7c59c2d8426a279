/* What the Zig workers import from C: the bindings, the shared helpers and
 * the bits of libc they use for output and files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "corral_util.h"
#include "worker.h"
