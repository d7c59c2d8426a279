/* What the Zig pool tasks import from C: the bindings and malloc. */
#include <stdlib.h>

#include "pool_task.h"
