#!/usr/bin/env bash
# The classic multiprocessing scenarios, run by Corral. Usage: demo.sh CORRAL
set -u
corral=${1:-target/debug/corral}
here=$(dirname "$0")
status=0

scenario() {
    printf '\n\033[1m== %s\033[0m\n' "$1"
}

scenario "1. Ten workers print their names; all joined; exit statuses reported"
"$corral" up "$here/hello.toml" || status=1

scenario "2. A pool of 4 workers squares 1..100, results in input order"
seq 1 100 | "$corral" pool guests/rust/target/wasm32-wasip2/release/square.wasm --workers 4 | paste -sd' ' - || status=1

scenario "3. Producer/consumer over a bounded queue: nothing lost, nothing duplicated"
"$corral" --quiet up "$here/producer-consumer.toml" | grep -E '^\[tally\]' || status=1

scenario "4. Two workers talk over a duplex pipe"
"$corral" --quiet up "$here/pipe.toml" || status=1

scenario "5. Ten workers append 10,000 lines each to one shared file, under a lock"
"$corral" --quiet up "$here/locked-append.toml" | grep -E '^\[check\]' || status=1

scenario "   ...and the same without the lock: the damage"
"$corral" --quiet up "$here/unlocked-append.toml" 2>/dev/null | grep -E '^\[check\]'

scenario "   ...and one pipeline in four languages: Python produces, Rust transforms, a JavaScript pool squares, C consumes"
"$corral" up "$here/languages.toml" || status=1

scenario "6. A TCP echo server worker: blocking (one client at a time), then multiplexing"
"$corral" --quiet up "$here/echo-blocking.toml" || status=1
"$corral" --quiet up "$here/echo.toml" || status=1

scenario "   ...and a server that asks for a port its policy does not grant: denied"
"$corral" --quiet run guests/rust/target/wasm32-wasip2/release/echo-server.wasm --name echo \
    --policy "$here/echo-policy.toml#elsewhere" -- 127.0.0.1:7007
echo "(exit status $?)"

scenario "   ...and one of them misbehaves: a trap, a runaway loop, a memory hog"
"$corral" run guests/rust/target/wasm32-wasip2/release/trap.wasm --name trapper
echo "(exit status $?)"
"$corral" run guests/rust/target/wasm32-wasip2/release/spin.wasm --name runaway --cpu 200ms
echo "(exit status $?)"
"$corral" run guests/rust/target/wasm32-wasip2/release/alloc.wasm --name hog --memory 16MiB -- 64
echo "(exit status $?)"

scenario "   ...and a supervised pipeline whose middle stage traps once: its group restarts it, nothing is lost"
"$corral" up "$here/supervised.toml" || status=1

exit $status
