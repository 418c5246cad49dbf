#!/bin/bash
# fuzz.sh -- runs every cargo-fuzz target of the project (each crates/*/fuzz
# directory, its own cargo workspace) for SECONDS each, one after the other.
#
#   tests/fuzz.sh [SECONDS] [FUZZ_DIR...]      default: 60 s, every crates/*/fuzz
#
# No nightly toolchain is needed: RUSTC_BOOTSTRAP=1 lets the stable compiler
# accept cargo-fuzz's -Z flags. cargo-fuzz is installed from crates.io when
# missing. Environment: FUZZ_TARGET_DIR (cargo target directory, default
# target/fuzz), FUZZ_SANITIZER (none by default: the fuzzed code is safe Rust and
# runs about twice as many inputs without ASan; set "address" to use it).
# Corpora stay in FUZZ_DIR/corpus/TARGET (not committed), crashes in
# FUZZ_DIR/artifacts/TARGET. Exit status 1 when any target found a crash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
secs=${1:-60}
shift || true
if [ "$#" -gt 0 ]; then
  dirs=("$@")
else
  dirs=(crates/*/fuzz)
fi
target_dir=${FUZZ_TARGET_DIR:-$root/target/fuzz}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

mkdir -p "$target_dir/logs"
rc=0
for dir in "${dirs[@]}"; do
  [ -f "$dir/Cargo.toml" ] || { echo "fuzz.sh: $dir: no Cargo.toml" >&2; rc=1; continue; }
  crate=$(basename "$(dirname "$dir")")
  (cd "$dir" && cargo fuzz build -s "$sanitizer" --target-dir "$target_dir/$crate")
  for target in $(cd "$dir" && cargo fuzz list); do
    log=$target_dir/logs/$crate-$target.log
    echo "fuzz.sh: $crate/$target for ${secs}s (log: $log)" >&2
    if (cd "$dir" && cargo fuzz run -s "$sanitizer" --target-dir "$target_dir/$crate" \
        "$target" -- -max_total_time="$secs") >"$log" 2>&1; then
      echo "$crate/$target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
    else
      echo "$crate/$target: FAILED (crash or build error), see $log and $dir/artifacts/$target"
      rc=1
    fi
  done
done
exit "$rc"
