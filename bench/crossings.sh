#!/usr/bin/env bash
# What one operation costs in instructions and in guest↔host crossings,
# counted with callgrind (repeatable on a noisy machine): each workload runs
# at two lengths and the difference is divided by the extra operations, so
# start-up cancels out. Crossings are host calls (wasmtime's
# HostFn::cabi_entrypoint) plus resource drops (its resource_drop libcall).
# Shows where the per-call floor puts a target: e.g. a locked append through
# std::fs is 10 host calls and 3 drops, whatever the host does inside them.
# Needs valgrind, python3 and a release host: cargo build --release; make guests.
set -euo pipefail
source "$(dirname "$0")/callgrind.sh"

measure call "bare host call (guard.fencing-token)" 100000 200000 "[locks.l]
[[worker]]
name = \"call\"
component = \"$guests/bench-ipc.wasm\"
args = [\"call\", \"l\", \"@N@\"]"

measure lock "lock acquire+release" 50000 100000 "[locks.l]
[[worker]]
name = \"lock\"
component = \"$guests/bench-ipc.wasm\"
args = [\"lock\", \"l\", \"@N@\"]"

measure append "locked append (appender guest, std::fs)" 2000 4000 "[locks.file]
[[worker]]
name = \"append\"
component = \"$guests/appender.wasm\"
args = [\"/log.txt\", \"file\", \"@N@\"]
mounts = [\"@shared:/\"]"

measure stat "stat (fs-bench guest, std::fs::metadata)" 5000 10000 "[[worker]]
name = \"stat\"
component = \"$guests/fs-bench.wasm\"
args = [\"stat\", \"/data\", \"@N@\"]
mounts = [\"@shared:/data\"]"
