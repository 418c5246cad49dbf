# rxl-timing: wall time from `xl create` and from `rxl create` to the guest's first
# console line (xenconsoled's log becoming non-empty) and to the command's return,
# side by side in one boot, alternating xl, rxl, xl, rxl. Same kernel, initramfs,
# 1 vCPU, 128 MiB. Numbers go to docs/PERFORMANCE.md; nothing is asserted on them.
# timeout: 300

start_debian_xenstored
start_xenconsoled

# first_line TOOL NAME -- create NAME with TOOL; sets RETURNED_MS and FIRST_LINE_MS.
first_line() {
  _cfg=$(guest_cfg "$2" default vcpus=1 memory=128)
  _log=$(guest_console_log "$2")
  rm -f "$_log"
  _t0=$(uptime_cs)
  if [ "$1" = rxl ]; then
    RXL_LOG=info rxl create "$_cfg" >/dev/null 2>/tmp/rxl-steps.log || fail "rxl create $2"
  else
    xl create "$_cfg" >/dev/null 2>&1 || fail "xl create $2"
  fi
  _t1=$(uptime_cs)
  _end=$((_t0 + 6000))
  while [ ! -s "$_log" ]; do
    [ "$(uptime_cs)" -le "$_end" ] || fail "no console line from $2 within 60 s"
    sleep 0.05
  done
  _t2=$(uptime_cs)
  RETURNED_MS=$(( (_t1 - _t0) * 10 )); FIRST_LINE_MS=$(( (_t2 - _t0) * 10 ))
  wait_domain_gone "$2" 120
}

for round in 1 2; do
  for tool in xl rxl; do
    first_line "$tool" "t-$tool-$round"
    echo "TIMING round=$round tool=$tool create_returned_ms=$RETURNED_MS first_console_line_ms=$FIRST_LINE_MS"
    [ "$tool" = xl ] || sed 's/\x1b\[[0-9;]*m//g; s/^/rxl-steps| /' /tmp/rxl-steps.log
  done
done
pass "timed xl create and rxl create"
