#!/bin/bash
# run-all.sh -- every rxen test: the README's test command, and what CI runs.
#
#   tests/run-all.sh [--no-testbed] [--no-gic2]
#
# Steps (all run, even after one fails; the exit status is non-zero if any failed):
#   fmt       cargo fmt --all --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   shell     shellcheck -S warning on the scripts under tests/ and .ci/
#   unit      cargo nextest run --workspace (cargo test --workspace without nextest)
#   selftest  tests/testbed/selftest.sh (the test bed's own parser and runner)
#   testbed   tests/testbed/run.sh --keep-going all (real Xen, GICv3)
#   gic2      tests/testbed/run.sh --gic 2 baseline (a second, short boot on GICv2)
# Runs tests/setup-host.sh first (installs what is missing). Step logs go to tests/testbed/out/run-all/.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
# The rustup toolchain when there is one (the project's default for host builds),
# else Debian's cargo. tests/setup-host.sh makes the same choice.
RUSTUP_BIN=${HOME:-/root}/.cargo/bin
if [ -x "$RUSTUP_BIN/cargo" ]; then
  case ":$PATH:" in *":$RUSTUP_BIN:"*) ;; *) export PATH="$RUSTUP_BIN:$PATH" ;; esac
fi

testbed=1 gic2=1
for a in "$@"; do
  case "$a" in
    --no-testbed) testbed=0 ;;
    --no-gic2) gic2=0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-all.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

# Install what is missing first (idempotent, about a second on a set-up machine), so
# that this command alone works on a fresh Debian 12 machine.
"$ROOT/tests/setup-host.sh" || { echo "run-all.sh: tests/setup-host.sh failed" >&2; exit 2; }
export RXEN_SKIP_SETUP=1

LOGS=$ROOT/tests/testbed/out/run-all
mkdir -p "$LOGS"
T_START=$(date +%s)
ROWS=()

# step NAME CMD... -- run CMD (output shown and saved), record result, time and the
# command's own summary line (the last line matching $summary_re).
step() {
  local name=$1; shift
  local t0 rc secs sum
  echo
  echo "======== $name: $*"
  t0=$(date +%s)
  "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - t0 ))
  sum=$(grep -E "$summary_re" "$LOGS/$name.log" | tail -n 1 | sed 's/^[[:space:]]*//' | cut -c1-90)
  [ "$rc" = 0 ] && res=PASS || res=FAIL
  echo "======== $name: $res (exit status $rc, ${secs}s)"
  ROWS+=("$(printf '%-9s %-5s %6ss  %s' "$name" "$res" "$secs" "$sum")")
  # The test bed's failing scenarios, from its summary table, under the step's row.
  if [ "$rc" != 0 ] && [ -n "$detail_re" ]; then
    while IFS= read -r line; do ROWS+=("            $line"); done \
      < <(grep -E "$detail_re" "$LOGS/$name.log" | sed 's/^[[:space:]]*//' | cut -c1-110)
  fi
  [ "$rc" = 0 ] || failed=$((failed + 1))
}
failed=0
detail_re=""

summary_re='^$^'
step fmt cargo fmt --all --check
summary_re='^error|^warning: .* generated'
step clippy cargo clippy --workspace --all-targets -- -D warnings
summary_re='^shellcheck: clean|^In .* line [0-9]+:'
step shell tests/lint-shell.sh
if cargo nextest --version >/dev/null 2>&1; then
  summary_re='^ *Summary \[|error: |no tests to run'
  step unit cargo nextest run --workspace --no-fail-fast --no-tests=warn
else
  summary_re='^test result:|error'
  step unit cargo test --workspace --no-fail-fast
fi
summary_re='^[0-9]+ passed, [0-9]+ failed$'
step selftest tests/testbed/selftest.sh
if [ "$testbed" = 1 ]; then
  detail_re='^  [^ |]+ +FAIL '
  step testbed tests/testbed/run.sh --keep-going all
  if [ "$gic2" = 1 ]; then
    step gic2 tests/testbed/run.sh --no-build --gic 2 baseline
  fi
fi

echo
echo "======== run-all summary ($(( $(date +%s) - T_START ))s)"
printf '%s\n' "${ROWS[@]}"
if [ "$failed" = 0 ]; then
  echo "ALL PASSED"
else
  echo "$failed step(s) FAILED"
fi
[ "$failed" = 0 ]
