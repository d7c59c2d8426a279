/* What main.zig imports from C (as the module `c`, by zig translate-c). */
#include <stdio.h>

#include "worker.h"
