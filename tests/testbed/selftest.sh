#!/bin/bash
# selftest.sh -- host-side self-test of the test bed's judging machinery, no QEMU needed:
#  1. check-log.pl on canned serial logs: passing, failing, missing, unfinished, timed
#     out and skipped scenarios must get the right verdict and a readable reason;
#  2. dom0/run-scenarios + dom0/lib.sh run for real on this host (sh) with small
#     scenarios that pass, fail, time out and miss an expected line, judged by
#     check-log.pl as run.sh does.
# Prints one line per check and "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
npass=0 nfail=0
ok()  { npass=$((npass + 1)); echo "ok   $*"; }
bad() { nfail=$((nfail + 1)); echo "FAIL $*"; }

# judge CASE NAMES... -- run check-log.pl on $T/CASE.log with scenarios in $T/sc;
# leaves its exit status in $judge_rc, its output in $T/CASE.out, results in $T/CASE.tsv.
judge() {
  local c=$1; shift
  : > "$T/$c.tsv"
  perl "$HERE/check-log.pl" --log "$T/$c.log" --scenarios "$T/sc" --results "$T/$c.tsv" \
    "${extra[@]}" "$@" > "$T/$c.out" 2>&1
  judge_rc=$?
  extra=()
}
extra=()

# verdict CASE NAME RESULT REASON-REGEX -- NAME's row in CASE's results must match.
verdict() {
  local c=$1 name=$2 want=$3 re=$4 row res reason
  row=$(awk -F'\t' -v n="$name" '$1 == n' "$T/$c.tsv")
  res=$(printf '%s' "$row" | cut -f2)
  reason=$(printf '%s' "$row" | cut -f4)
  if [ "$res" = "$want" ] && [[ "$reason" =~ $re ]]; then
    ok "$c: $name is $want${reason:+ ($reason)}"
  else
    bad "$c: $name: want $want /$re/, got '${res:-no row}' '$reason'"
    sed 's/^/     | /' "$T/$c.out"
  fi
}
exit_is() {
  if [ "$judge_rc" = "$2" ]; then ok "$1: check-log exit status $2"
  else bad "$1: check-log exit status $judge_rc, want $2"; fi
}
# Warnings from perl itself would mean a bug in the parser.
no_perl_warnings() {
  if grep -q ' at .*check-log.pl line ' "$T/$1.out"; then bad "$1: perl warnings"; sed 's/^/     | /' "$T/$1.out"
  else ok "$1: no perl warnings"; fi
}

mkdir -p "$T/sc"
printf '^hello from a\n!^FAIL: \n' > "$T/sc/a.expect"
printf '^PASS: b did it\n' > "$T/sc/b.expect"
printf 'RXEN-SCENARIO-BEGIN\n' > "$T/sc/selfmatch.expect"
printf '^done\n' > "$T/sc/c.expect"

# ---------------------------------------------------------------- 1. canned logs
cat > "$T/good.log" <<'L'
[   0.31] (XEN) Xen version 4.17.7
[   4.70] === RXEN-TESTBED-DOM0-UP kernel=6.1.0 cpus=2 hypervisor=xen 4.17.7 ===
[   4.80] === RXEN-SCENARIO-BEGIN a timeout=120s ===
[   5.00] hello from a
[   5.10] === RXEN-SCENARIO-END a rc=0 seconds=0.3 ===
[   5.20] === RXEN-SCENARIO-BEGIN b timeout=120s ===
[   6.00] PASS: b did it
[   6.10] === RXEN-SCENARIO-END b rc=0 seconds=0.9 ===
[   6.20] === RXEN-TESTBED-DONE ===
L
judge good a b; exit_is good 0; verdict good a PASS '^$'; verdict good b PASS '^$'; no_perl_warnings good

cat > "$T/rc.log" <<'L'
[   4.70] === RXEN-TESTBED-DOM0-UP kernel=6.1.0 ===
[   4.80] === RXEN-SCENARIO-BEGIN a timeout=120s ===
[   5.00] hello from a
[   5.05] FAIL: the widget did not frob
[   5.10] === RXEN-SCENARIO-END a rc=1 seconds=0.3 ===
[   5.20] === RXEN-SCENARIO-BEGIN b timeout=120s ===
[   6.00] PASS: b did something else
[   6.10] === RXEN-SCENARIO-END b rc=0 seconds=0.9 ===
[   6.20] === RXEN-TESTBED-DONE ===
L
judge rc a b; exit_is rc 1
verdict rc a FAIL '^script exited with status 1: FAIL: the widget did not frob$'
verdict rc b FAIL '^expected pattern /\^PASS: b did it/ not found'
if grep -q '##### FAIL a: script exited with status 1' "$T/rc.out" && grep -q '  | FAIL: the widget did not frob' "$T/rc.out" \
   && grep -q 'also: forbidden pattern' "$T/rc.out"; then
  ok "rc: the report names the reason, the other reasons and prints the section"
else bad "rc: report lacks reason or section"; sed 's/^/     | /' "$T/rc.out"; fi
no_perl_warnings rc

cat > "$T/crash.log" <<'L'
[   4.70] === RXEN-TESTBED-DOM0-UP kernel=6.1.0 ===
[   4.80] === RXEN-SCENARIO-BEGIN a timeout=120s ===
[   5.00] hello from a
[   5.10] [  5.0] Unable to handle kernel NULL pointer dereference
L
extra=(--qemu-rc 124 --timeout-hit)
judge crash a b; exit_is crash 1
verdict crash a FAIL '^did not finish: no END marker \(the whole run hit its overall time limit; dom0 did not finish its scenario list\)'
verdict crash b FAIL '^missing: it never started'

cat > "$T/noboot.log" <<'L'
[   0.31] (XEN) Xen version 4.17.7
[   0.40] (XEN) Panic on CPU 0:
L
extra=(--qemu-rc 0)
judge noboot a; exit_is noboot 1
verdict noboot a FAIL "^missing: it never started \(dom0 never reached the test bed's /init"

cat > "$T/timeout.log" <<'L'
[   4.70] === RXEN-TESTBED-DOM0-UP kernel=6.1.0 ===
[   4.80] === RXEN-SCENARIO-BEGIN a timeout=5s ===
[   5.00] hello from a
[   9.90] === RXEN-SCENARIO-TIMEOUT a after 5s ===
[   9.90] === RXEN-SCENARIO-END a rc=137 seconds=5.0 ===
[  10.00] === RXEN-SCENARIO-SKIP b a failed before it (--keep-going runs it) ===
[  10.10] === RXEN-TESTBED-DONE ===
L
judge timeout a b; exit_is timeout 1
verdict timeout a FAIL '^timed out: killed after its limit of 5s'
verdict timeout b FAIL '^not run: a failed before it \(--keep-going runs it\)$'

cat > "$T/noexpect.log" <<'L'
[   4.70] === RXEN-TESTBED-DOM0-UP kernel=6.1.0 ===
[   4.80] === RXEN-SCENARIO-BEGIN nothing timeout=5s ===
[   9.90] === RXEN-SCENARIO-END nothing rc=0 seconds=5.0 ===
[   4.80] === RXEN-SCENARIO-BEGIN selfmatch timeout=5s ===
[   9.90] === RXEN-SCENARIO-END selfmatch rc=0 seconds=5.0 ===
L
judge noexpect nothing selfmatch; exit_is noexpect 1
verdict noexpect nothing FAIL 'nothing\.expect is missing'
# The runner's marker lines must not satisfy a pattern by themselves.
verdict noexpect selfmatch FAIL '^expected pattern /RXEN-SCENARIO-BEGIN/ not found'

# ---------------------------------------------------------------- 2. the dom0 runner, for real
D=$T/dom0; mkdir -p "$D/scenarios"
cp "$HERE/dom0/run-scenarios" "$HERE/dom0/lib.sh" "$D/"
cat > "$D/scenarios/ok.sh" <<'S'
check "true is true" true
wait_for 5 "a file" test -e /
echo "scenario name is $SCENARIO"
S
printf '^PASS: true is true\n^scenario name is ok$\n' > "$D/scenarios/ok.expect"
cat > "$D/scenarios/broken.sh" <<'S'
log "about to fail"
expect_eq "answer" 41 42
pass "never printed"
S
printf '^PASS: never printed\n' > "$D/scenarios/broken.expect"
cat > "$D/scenarios/slow.sh" <<'S'
# timeout: 1
sleep 30
S
printf '^never\n' > "$D/scenarios/slow.expect"
cat > "$D/scenarios/waits.sh" <<'S'
wait_for 1 "a file that never appears" test -e /nonexistent-rxen-selftest
S
printf '^never\n' > "$D/scenarios/waits.expect"
cat > "$D/scenarios/quiet.sh" <<'S'
echo "all fine, but says nothing expected"
S
printf '^PASS: something\n' > "$D/scenarios/quiet.expect"
cat > "$D/scenarios/info.sh" <<'S'
printf 'xen_major              : 4\nxen_extra              : .7-pre : x\n' > "$TESTBED/info.txt"
expect_eq "info_field major" "$(info_field xen_major < "$TESTBED/info.txt")" 4
expect_eq "info_field extra" "$(info_field xen_extra < "$TESTBED/info.txt")" ".7-pre : x"
expect_eq "info_field absent" "$(info_field xen_minor < "$TESTBED/info.txt")" ""
S
printf '^PASS: info_field major\n^PASS: info_field extra\n^PASS: info_field absent\n' > "$D/scenarios/info.expect"
cat > "$D/scenarios/cfg.sh" <<'S'
XEN_CFG_DIR=$TESTBED/cfg GUEST_KERNEL=/k GUEST_RAMDISK=/r
cfg=$(guest_cfg g1 netguest memory=64 extra_args=ip=off 'vif=["bridge=xenbr0"]')
expect_eq "guest_cfg path" "$cfg" "$TESTBED/cfg/g1.cfg"
check "name" grep -qx 'name = "g1"' "$cfg"
check "kernel" grep -qx 'kernel = "/k"' "$cfg"
check "memory" grep -qx 'memory = 64' "$cfg"
check "vcpus default" grep -qx 'vcpus = 1' "$cfg"
check "extra" grep -qx 'extra = "console=hvc0 rdinit=/init rxen.guest=netguest ip=off"' "$cfg"
check "raw line" grep -qx 'vif=\["bridge=xenbr0"\]' "$cfg"
cfg=$(guest_cfg g2)
check "default guest script" grep -q 'rxen.guest=default"$' "$cfg"
GUEST32_KERNEL=/z GUEST32_RAMDISK=/r32
cfg=$(guest_cfg g3 default arch=arm32)
check "arm32 kernel" grep -qx 'kernel = "/z"' "$cfg"
check "arm32 ramdisk" grep -qx 'ramdisk = "/r32"' "$cfg"
S
printf '^PASS: guest_cfg path\n^PASS: raw line\n^PASS: default guest script\n^PASS: arm32 kernel\n^PASS: arm32 ramdisk\n' > "$D/scenarios/cfg.expect"
printf 'ok\nbroken\nslow\nwaits\nquiet\ninfo\ncfg\n' > "$D/list"
stamp_lines() { perl -MTime::HiRes=time -ne 'BEGIN { $| = 1; $t = time } printf "[%7.2f] %s", time - $t, $_'; }
{ echo "=== RXEN-TESTBED-DOM0-UP kernel=host ==="
  KEEP_GOING=1 TESTBED=$D sh "$D/run-scenarios" "$D/list" </dev/null
  echo "=== RXEN-TESTBED-DONE ==="; } 2>&1 | stamp_lines > "$T/runner.log"
cp -r "$D/scenarios/." "$T/sc/"
judge runner ok broken slow waits quiet info cfg; exit_is runner 1
verdict runner ok PASS '^$'
verdict runner broken FAIL "^script exited with status 1: FAIL: answer: got '41', expected '42'$"
verdict runner slow FAIL '^timed out: killed after its limit of 1s'
verdict runner waits FAIL '^script exited with status 1: FAIL: timed out after 1s waiting for a file that never appears$'
verdict runner quiet FAIL '^expected pattern /\^PASS: something/ not found'
verdict runner info PASS '^$'
verdict runner cfg PASS '^$'
no_perl_warnings runner

{ echo "=== RXEN-TESTBED-DOM0-UP kernel=host ==="
  KEEP_GOING=0 TESTBED=$D sh "$D/run-scenarios" "$D/list" </dev/null
  echo "=== RXEN-TESTBED-DONE ==="; } 2>&1 | stamp_lines > "$T/stop.log"
judge stop ok broken slow; exit_is stop 1
verdict stop ok PASS '^$'
verdict stop broken FAIL '^script exited with status 1'
verdict stop slow FAIL '^not run: broken failed before it'

echo "selftest: $npass passed, $nfail failed"
echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
