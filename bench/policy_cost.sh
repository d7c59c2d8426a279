#!/usr/bin/env bash
# What policy checks cost per IPC operation, counted in instructions with
# callgrind (repeatable on a noisy machine, unlike the timed policy rows of
# `make bench`). Runs the bench-ipc guest's lock and queue-put loops at two
# lengths, with no policy and under a profile of 15 grants, and prints the
# instructions per operation (the slope, so start-up cancels out).
# Needs valgrind, python3 and a release host: cargo build --release; make guests.
set -euo pipefail
source "$(dirname "$0")/callgrind.sh"
cp "$root/bench/policy-grants.toml" "$dir/policy.toml"

for op in lock put; do
  case $op in
    lock) args='"lock", "l", "@N@"' ;;
    put) args='"put", "q", "0", "@N@", "64", "1"' ;;
  esac
  for policy in no yes; do
    grant=""
    [ "$policy" = yes ] && grant='policy = "policy.toml#bench"'
    measure "$op-$policy" "$op, policy $policy" 50000 100000 "[locks.l]
[queues.q]
capacity = 1000000
[[worker]]
name = \"$op\"
component = \"$guests/bench-ipc.wasm\"
args = [$args]
$grant"
  done
done
