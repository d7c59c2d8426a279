#!/usr/bin/env bash
# Measures the numbers in docs/guests.md for every guest language: component
# size, compile time (empty cache), per-task instantiate+call time, and queue
# throughput of each language's consumer. Usage (after `make guests host`):
#   docs/measure-guests.sh [CORRAL]        # default target/debug/corral
set -euo pipefail
cd "$(dirname "$0")/.."
corral=$(realpath "${1:-target/debug/corral}")
rust=guests/rust/target/wasm32-wasip2/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
N=20000

path() { # LANG NAME
    if [ "$1" = rust ]; then echo "$rust/$2.wasm"; else echo "guests/$1/build/$2.wasm"; fi
}

printf '%-7s %-9s %10s %12s %14s %16s\n' lang guest size compile_ms fresh_task_us consumer_msgs_s
for lang in rust c cpp zig python js; do
    for guest in consumer appender square; do
        file=$(path "$lang" "$guest")
        size=$(stat -c %s "$file")
        compile=$("$corral" --cache-dir "$tmp/cache-$lang-$guest" compile "$file" 2>&1 |
            sed -n 's/.*compiled in \([0-9]*\) ms.*/\1/p')
        fresh=- rate=-
        if [ "$guest" = square ]; then
            # A fresh instance per task: instantiation + one call, 200 times.
            seq 1 200 > "$tmp/in"
            out=$("$corral" --cache-dir "$tmp/cache-$lang-$guest" pool "$file" --workers 1 --fresh \
                --input "$tmp/in" 2>&1 >/dev/null | tail -n 1)
            per_s=$(echo "$out" | sed -n 's/.*(\([0-9]*\) tasks\/s).*/\1/p')
            fresh=$((1000000 / per_s))
        fi
        if [ "$guest" = consumer ]; then
            cat > "$tmp/m.toml" <<TOML
[queues.jobs]
capacity = 1024
[[worker]]
name = "producer"
component = "$PWD/$rust/producer.wasm"
args = ["jobs", "$N", "1", "64"]
[[worker]]
name = "consumer"
component = "$PWD/$file"
args = ["jobs"]
TOML
            ms=$("$corral" --cache-dir "$tmp/cache-$lang-$guest" up "$tmp/m.toml" 2>&1 >/dev/null |
                sed -n 's/^consumer *exited 0 *(\([0-9.]*\) ms)/\1/p')
            rate=$(awk -v n=$N -v ms="$ms" 'BEGIN { printf "%d", n / (ms / 1000) }')
        fi
        printf '%-7s %-9s %10s %12s %14s %16s\n' "$lang" "$guest" "$size" "$compile" "$fresh" "$rate"
    done
done
