# Sourced by the callgrind scripts in bench/ (crossings.sh, policy_cost.sh):
# paths, a scratch directory, and one way to count a workload's instructions
# per operation. Needs valgrind and a release host: cargo build --release;
# make guests.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corral="${CORRAL:-$root/target/release/corral}"
guests="$root/guests/rust/target/wasm32-wasip2/release"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

# profile NAME N MANIFEST-BODY: writes the manifest (@N@ replaced by N) to
# $dir/NAME-N.toml and runs it under callgrind into $dir/NAME-N.out.
profile() {
  local name=$1 n=$2 body=$3
  printf '%s\n' "${body//@N@/$n}" > "$dir/$name-$n.toml"
  # Once outside callgrind first, so a guest built since the last run is
  # compiled (and cached) before counting starts.
  "$corral" --max-workers 2 -q up "$dir/$name-$n.toml" > /dev/null
  valgrind --tool=callgrind --callgrind-out-file="$dir/$name-$n.out" \
    "$corral" --max-workers 2 -q up "$dir/$name-$n.toml" > /dev/null 2>&1
}

# measure NAME LABEL SHORT LONG MANIFEST-BODY: profiles the manifest at two
# lengths and prints, per extra operation, instructions and crossings (the
# slope, so start-up cancels out).
measure() {
  local name=$1 label=$2 short=$3 long=$4 body=$5
  profile "$name" "$short" "$body"
  profile "$name" "$long" "$body"
  python3 "$root/bench/crossings.py" "$label" "$((long - short))" \
    "$dir/$name-$short.out" "$dir/$name-$long.out"
}
