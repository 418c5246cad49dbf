# rxl-timing: wall time from `xl create` and from `rxl create` to the command's return
# and to the guest's first console line (xenconsoled's log becoming non-empty), side
# by side in one boot, the tools taking turns in every round. Two guests, each with
# 1 vCPU and 128 MiB, the same config for both tools:
#  - first-line: a minimal kernel (guest/first-line.S) whose first instructions write
#    its console line, so that the span is the toolstack's work plus xenconsoled's;
#  - first-line-b2b: the same guest, each create right after the previous guest is
#    gone (no settle, below), as the scenario did before: reported apart;
#  - linux: Debian's kernel + the test bed's initramfs (32 MiB to copy in), whose
#    first console line comes when Linux registers hvc0, so that the span includes
#    the kernel's early boot, the same for both tools. Here rxl also runs a third
#    time per round with RXL_COPY=map (images copied through foreign mappings, as
#    before grant copy) for the before/after of the builder's copy.
# Numbers go to docs/PERFORMANCE.md; nothing is asserted on them.
# timeout: 900

start_debian_xenstored
start_xenconsoled

# Rounds per guest: the host's load stalls QEMU for seconds at random, so medians of
# several rounds are what count (the minimal guest's rounds are cheap).
FIRST_LINE_ROUNDS=9
B2B_ROUNDS=5
LINUX_ROUNDS=5
# Pause after each guest is gone, before the next create (but in the first-line-b2b
# rounds), so that a create does not overlap the previous guest's teardown (its
# monitor's clean-up, xenconsoled closing the console, Xen scrubbing the freed
# 128 MiB). The same for both tools; first-line-b2b shows what it changes (in the
# final runs: nothing measurable). What did slow creates down, rxl's more (its process
# reached main() 28-150 ms after the command instead of 7-10 ms), was the first
# ~12 s after dom0 came up, while Xen still scrubs the free RAM in its idle loop
# ("Scrubbing Free RAM in background" in Xen's boot log): the first rounds of a boot
# are the noisiest (docs/PERFORMANCE.md).
SETTLE_SECONDS=2
FIRST_LINE_KERNEL=$TESTBED/guest/first-line.Image
RESULTS=/tmp/rxl-timing.tsv
: > "$RESULTS"

# first_line_cfg NAME -- config of the minimal guest (no initramfs, no command line).
first_line_cfg() {
  mkdir -p "$XEN_CFG_DIR"
  cat > "$XEN_CFG_DIR/$1.cfg" <<CFG
name = "$1"
kernel = "$FIRST_LINE_KERNEL"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
  echo "$XEN_CFG_DIR/$1.cfg"
}

# since_start START_REALTIME -- stdin's lines, each RFC 3339 UTC timestamp (as rxl's
# log writes them) replaced by its offset in ms from START_REALTIME (epoch seconds),
# so that rxl's steps and its monitor's line up with the stopwatch's spans.
since_start() {
  sed "s/\x1b\[[0-9;]*m//g" | awk -v t0="$1" '
    match($0, /[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+Z/) {
      ts = substr($0, RSTART, RLENGTH - 1); split(ts, p, ":")
      off = (p[1] * 3600 + p[2] * 60 + p[3] - (t0 % 86400)) * 1000
      if (off < -43200000) off += 86400000
      $0 = substr($0, 1, RSTART - 12) sprintf("+%.1fms", off) substr($0, RSTART + RLENGTH)
    }
    { print }'
}

# timed GUEST TOOL ROUND -- create a GUEST (first-line, first-line-b2b or linux) with
# TOOL (xl, rxl, or rxl-map: rxl with RXL_COPY=map) under the stopwatch
# (dom0/timecreate.c: inotify on the console log, microseconds), print a TIMING line
# and rxl's step log and its monitor's first lines with times from the command's
# start, wait until the guest has powered off and its domain is gone (and settle).
timed() {
  _name=t-$1-$2-$3
  if [ "$1" != linux ]; then
    _cfg=$(first_line_cfg "$_name")
  else
    _cfg=$(guest_cfg "$_name" default vcpus=1 memory=128)
  fi
  _log=$(guest_console_log "$_name")
  rm -f "$_log" /tmp/timecreate.out
  # Back to back: which monitors of earlier creates are still running now.
  [ "$1" != first-line-b2b ] \
    || echo "LEFTOVER guest=$1 round=$3 tool=$2 xl_processes=$(pidof xl | wc -w) rxl_processes=$(pidof rxl | wc -w)"
  case "$2" in
    rxl) RXL_LOG=info "$TESTBED/timecreate" /tmp/timecreate.out "$_log" 60000 \
      rxl create "$_cfg" >/dev/null 2>/tmp/rxl-steps.log || fail "rxl create $_name" ;;
    rxl-map) RXL_COPY=map RXL_LOG=info "$TESTBED/timecreate" /tmp/timecreate.out "$_log" 60000 \
      rxl create "$_cfg" >/dev/null 2>/tmp/rxl-steps.log || fail "RXL_COPY=map rxl create $_name" ;;
    *) "$TESTBED/timecreate" /tmp/timecreate.out "$_log" 60000 \
      xl create "$_cfg" >/dev/null 2>&1 || fail "xl create $_name" ;;
  esac
  # ret_us=N log_created_us=N first_line_us=N start_realtime=S.U
  read -r _ret _created _first _t0 < /tmp/timecreate.out
  _ret=$(( ${_ret#*=} / 1000 )); _created=${_created#*=}; _first=$(( ${_first#*=} / 1000 ))
  [ "$_created" -lt 0 ] || _created=$(( _created / 1000 ))
  _t0=${_t0#*=}
  echo "TIMING guest=$1 round=$3 tool=$2 create_returned_ms=$_ret first_console_line_ms=$_first console_log_opened_ms=$_created"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$_ret" "$_first" >> "$RESULTS"
  if [ "$2" != xl ]; then
    since_start "$_t0" < /tmp/rxl-steps.log | sed "s/^/rxl-steps $1 $3 $2| /"
    # The monitor's first lines (it logs with -v to /var/log/xen/rxl-NAME.log).
    [ ! -f "/var/log/xen/rxl-$_name.log" ] \
      || head -n 3 "/var/log/xen/rxl-$_name.log" | since_start "$_t0" | sed "s/^/rxl-monitor $1 $3 $2| /"
  fi
  wait_domain_gone "$_name" 120
  [ "$1" = first-line-b2b ] || sleep "$SETTLE_SECONDS"
}

round=1
while [ "$round" -le "$FIRST_LINE_ROUNDS" ]; do
  for tool in xl rxl; do timed first-line "$tool" "$round"; done
  round=$((round + 1))
done
round=1
while [ "$round" -le "$B2B_ROUNDS" ]; do
  for tool in xl rxl; do timed first-line-b2b "$tool" "$round"; done
  round=$((round + 1))
done
round=1
while [ "$round" -le "$LINUX_ROUNDS" ]; do
  for tool in xl rxl rxl-map; do timed linux "$tool" "$round"; done
  round=$((round + 1))
done

# Medians per guest and tool, and xl's median over each rxl variant's.
awk -F '\t' '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
      t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { k = $1 " " $2; ret[k] = ret[k] " " $3; first[k] = first[k] " " $4; seen[k] = 1 }
  END {
    for (k in seen) {
      split(k, g, " "); mr[k] = median(ret[k]); mf[k] = median(first[k])
      printf "MEDIAN guest=%s tool=%s create_returned_ms=%d first_console_line_ms=%d\n", g[1], g[2], mr[k], mf[k]
    }
    for (k in seen) {
      split(k, g, " "); x = g[1] " xl"
      if (g[2] == "xl" || !(x in seen)) continue
      printf "RATIO guest=%s xl/%s create_returned=%.2f first_console_line=%.2f\n", g[1], g[2], mr[x] / mr[k], mf[x] / mf[k]
    }
  }' "$RESULTS" | sort
pass "timed xl create and rxl create"
