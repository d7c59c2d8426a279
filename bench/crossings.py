"""Per-operation instructions and guest-host crossings from two callgrind
profiles of the same workload at different lengths (see crossings.sh).

Usage: crossings.py LABEL EXTRA_OPS SHORT.out LONG.out
"""

import re
import sys


def read(path):
    """Total instructions, host calls and resource drops of one profile."""
    names, calls, drops, total = {}, 0, 0, 0
    callee = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                total = int(line.split()[1])
                continue
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m:
                index, name = m.groups()
                if name:
                    names[index] = name.strip()
                callee = names.get(index) if line.startswith("cfn=") else None
                continue
            m = re.match(r"calls=(\d+)", line)
            if m and callee:
                if "HostFn::cabi_entrypoint" in callee:
                    calls += int(m.group(1))
                elif callee.endswith("libcalls::trampolines::resource_drop"):
                    drops += int(m.group(1))
    return total, calls, drops


def main():
    label, extra = sys.argv[1], int(sys.argv[2])
    short, long = read(sys.argv[3]), read(sys.argv[4])
    instructions, calls, drops = ((b - a) / extra for a, b in zip(short, long))
    print(
        f"{label}: {instructions:,.0f} instructions, "
        f"{calls:.1f} host calls and {drops:.1f} resource drops per operation"
    )


if __name__ == "__main__":
    main()
