#!/usr/bin/env bash
# Two builds of corral compared on the hot rows of `make bench`, in
# instructions per operation counted with callgrind: repeatable on a noisy
# machine, where timed rows of two builds differ by more than 5% from noise
# alone. Each workload runs at two lengths under each build and the slope is
# taken, so start-up cancels out.
# Usage: bench/ab.sh OLD_CORRAL NEW_CORRAL   (release builds; make guests)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_CORRAL NEW_CORRAL" >&2; exit 2; }
old=$1 new=$2
source "$(dirname "$0")/callgrind.sh"

# row NAME LABEL SHORT LONG MANIFEST-BODY: one line of the table.
row() {
  local name=$1 label=$2 short=$3 long=$4 body=$5 build
  for build in old new; do
    corral=${!build}
    profile "$name-$build" "$short" "$body"
    profile "$name-$build" "$long" "$body"
  done
  python3 - "$label" "$((long - short))" "$dir/$name" "$short" "$long" <<'PY'
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from crossings import read
label, extra, base, short, long = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
per = {}
for build in ("old", "new"):
    a, b = read(f"{base}-{build}-{short}.out")[0], read(f"{base}-{build}-{long}.out")[0]
    per[build] = (b - a) / extra
delta = (per["new"] - per["old"]) / per["old"] * 100
print(f"| {label} | {per['old']:,.0f} | {per['new']:,.0f} | {delta:+.1f}% |")
PY
}
export BENCH_DIR="$root/bench"

echo "| row | old instr/op | new instr/op | change |"
echo "| --- | ---: | ---: | ---: |"
row put "queue put, 64 B" 50000 100000 "[queues.q]
capacity = 1000000
[[worker]]
name = \"put\"
component = \"$guests/bench-ipc.wasm\"
args = [\"put\", \"q\", \"0\", \"@N@\", \"64\", \"1\"]"

row pipe "pipe round trip, 64 B" 10000 20000 "[pipes.p]
ends = [\"ping\", \"echo\"]
[[worker]]
name = \"ping\"
component = \"$guests/bench-ipc.wasm\"
args = [\"ping\", \"p\", \"@N@\", \"64\"]
[[worker]]
name = \"echo\"
component = \"$guests/bench-ipc.wasm\"
args = [\"echo\", \"p\"]"

row lock "lock acquire+release" 50000 100000 "[locks.l]
[[worker]]
name = \"lock\"
component = \"$guests/bench-ipc.wasm\"
args = [\"lock\", \"l\", \"@N@\"]"

for op in rw stat open; do
  row "fs-$op" "file $op (fs-bench)" 5000 10000 "[[worker]]
name = \"fs\"
component = \"$guests/fs-bench.wasm\"
args = [\"$op\", \"/data\", \"@N@\"]
mounts = [\"@shared:/data\"]"
done
