#!/usr/bin/env bash
# What policy checks cost per IPC operation, counted in instructions with
# callgrind (repeatable on a noisy machine, unlike the timed policy rows of
# `make bench`). Runs the bench-ipc guest's lock and queue-put loops at two
# lengths, with no policy and under a profile of 15 grants, and prints the
# instructions per operation (the slope, so start-up cancels out).
# Needs valgrind and a release host: cargo build --release; make guests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corral="$root/target/release/corral"
guest="$root/guests/rust/target/wasm32-wasip2/release/bench-ipc.wasm"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cat > "$dir/policy.toml" <<'TOML'
[profiles.bench.ipc]
queues = { "a-*" = ["put"], "b-*" = ["get"], "c" = ["put", "get"], "d*" = ["*"], "e" = ["get"], "q" = ["put", "get", "close"] }
locks = { "x-*" = ["acquire"], "y" = ["acquire"], "z?" = ["acquire"], "l" = ["acquire"] }
pipes = { "p1" = ["send"], "p2" = ["recv"] }
events = { "go" = ["wait"] }
semaphores = { "s" = ["acquire", "release"] }
barriers = { "b" = ["wait"] }
TOML

# instructions OP N POLICY: total instructions of one run.
instructions() {
  local op=$1 n=$2 policy=$3 args
  case $op in
    lock) args="\"lock\", \"l\", \"$n\"" ;;
    put) args="\"put\", \"q\", \"0\", \"$n\", \"64\", \"1\"" ;;
  esac
  {
    echo '[locks.l]'
    echo '[queues.q]'
    echo 'capacity = 1000000'
    echo '[[worker]]'
    echo "name = \"$op\""
    echo "component = \"$guest\""
    echo "args = [$args]"
    [ "$policy" = yes ] && echo 'policy = "policy.toml#bench"'
  } > "$dir/m.toml"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$corral" --max-workers 2 -q up "$dir/m.toml" 2>&1 >/dev/null |
    awk '/Collected/ {print $4}'
}

for op in lock put; do
  for policy in no yes; do
    a=$(instructions $op 50000 $policy)
    b=$(instructions $op 100000 $policy)
    echo "$op, policy $policy: $(( (b - a) / 50000 )) instructions per operation"
  done
done
