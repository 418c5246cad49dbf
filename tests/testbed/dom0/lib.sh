# lib.sh -- helpers for test-bed scenario scripts. Sourced (busybox sh, dom0) before each
# scenario; see tests/testbed/README.md for the list. A scenario passes when its script
# exits 0 and every pattern of its .expect file appears in its section of the log.
#
# Conventions: `fail` ends the scenario at once with a readable reason; `pass` records a
# check that held. Output lines starting with "PASS: " / "FAIL: " are what .expect files
# and readers look for.

TESTBED=${TESTBED:-/testbed}
SCENARIO=${SCENARIO:-unknown}
GUEST_KERNEL=${GUEST_KERNEL:-$TESTBED/guest/Image}
GUEST_RAMDISK=${GUEST_RAMDISK:-$TESTBED/guest/guest.cpio.gz}
# The 32-bit guest: Debian's armhf LPAE kernel (a zImage) and an armhf busybox initramfs.
GUEST32_KERNEL=${GUEST32_KERNEL:-$TESTBED/guest/zImage}
GUEST32_RAMDISK=${GUEST32_RAMDISK:-$TESTBED/guest/guest32.cpio.gz}
MODULE_DIR=${MODULE_DIR:-/lib/modules/testbed}
XEN_CONSOLE_LOG_DIR=/var/log/xen/console
XEN_CFG_DIR=${XEN_CFG_DIR:-/etc/xen}
XENSTORED_SOCKET=/var/run/xenstored/socket

# ---------------------------------------------------------------- reporting
log()  { echo "[$SCENARIO] $*"; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; exit 1; }

# run CMD ARGS... -- echo the command, run it, fail the scenario if it exits non-zero.
run() {
  echo "+ $*"
  "$@"
  _rc=$?
  [ "$_rc" -eq 0 ] || fail "'$*' exited with status $_rc"
}

# check DESCRIPTION CMD ARGS... -- pass if CMD succeeds, else fail with DESCRIPTION.
check() {
  _desc=$1; shift
  if "$@"; then pass "$_desc"; else fail "$_desc (check failed: $*)"; fi
}

# expect_eq DESCRIPTION GOT WANT -- pass if the two strings are equal.
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1: '$2'"; else fail "$1: got '$2', expected '$3'"; fi
}

# ---------------------------------------------------------------- time
# uptime_cs -- seconds since boot in hundredths, as an integer (shell arithmetic only).
uptime_cs() {
  read -r _up _ < /proc/uptime
  _up=${_up%.*}${_up#*.}
  _up=${_up#"${_up%%[!0]*}"}
  echo "${_up:-0}"
}

# wait_for SECONDS DESCRIPTION CMD ARGS... -- poll CMD every 0.2 s until it succeeds;
# fail the scenario after SECONDS. Returns at once when CMD already succeeds.
wait_for() {
  _wf_limit=$1; _wf_desc=$2; shift 2
  _wf_end=$(( $(uptime_cs) + _wf_limit * 100 ))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(uptime_cs)" -le "$_wf_end" ] || fail "timed out after ${_wf_limit}s waiting for $_wf_desc"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- files and output
# show_file PREFIX FILE -- print FILE with "PREFIX| " before each line (CRs dropped), so
# that a guest's console or a daemon's log can be read (and matched) in the serial log.
show_file() {
  echo "----- $2 -----"
  tr -d '\r' < "$2" | sed "s/^/$1| /"
  echo "----- end of $2 -----"
}

# info_field KEY -- read `xl info`-style lines ("key      : value") on stdin, print the
# value of KEY (first match, surrounding blanks removed; the value may contain ':').
info_field() {
  awk -v k="$1" '{
    i = index($0, ":"); if (i == 0) next
    key = substr($0, 1, i - 1); sub(/[ \t]+$/, "", key); sub(/^[ \t]+/, "", key)
    if (key != k) next
    v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v)
    print v; exit
  }'
}

# ---------------------------------------------------------------- bridges
# make_bridges MAC_PREFIX NAME:ADDRESS... -- a bridge NAME per argument, up, with
# ADDRESS/24 and the MAC MAC_PREFIX followed by its position (0, 1, ...): an address
# and MAC of the bridge's own, as the TAPs on it all carry fe:ff:ff:ff:ff:ff.
make_bridges() {
  _mb_prefix=$1; shift
  _mb_n=0
  for _mb in "$@"; do
    run brctl addbr "${_mb%%:*}"
    run ip link set "${_mb%%:*}" address "$_mb_prefix$_mb_n"
    run ip addr add "${_mb#*:}/24" dev "${_mb%%:*}"
    run ip link set "${_mb%%:*}" up
    _mb_n=$((_mb_n + 1))
  done
}

# ---------------------------------------------------------------- kernel modules
# load_module NAME... -- insmod Debian's modules (xen-blkback, xen-netback, loop, tun,
# bridge, ...) with their dependencies; modules already loaded are skipped.
load_module() {
  for _lm in "$@"; do
    case "$_lm" in
      bridge) set -- llc stp bridge ;;
      xenfs)  set -- xen-privcmd xenfs ;;
      *)      set -- "$_lm" ;;
    esac
    for _lm_mod in "$@"; do
      [ -d "/sys/module/$(echo "$_lm_mod" | tr - _)" ] && continue
      if ! insmod "$MODULE_DIR/$_lm_mod.ko"; then
        echo "load_module: insmod $MODULE_DIR/$_lm_mod.ko failed"
        return 1
      fi
    done
  done
}

# ---------------------------------------------------------------- Debian's daemons (reference)
# start_debian_xenstored -- Debian's C xenstored plus xen-init-dom0; no-op if running.
start_debian_xenstored() {
  if pidof xenstored >/dev/null 2>&1 && [ -S "$XENSTORED_SOCKET" ]; then return 0; fi
  log "starting Debian's xenstored"
  xenstored --pid-file=/var/run/xenstored.pid || fail "xenstored did not start"
  wait_for 30 "xenstored's socket $XENSTORED_SOCKET" test -S "$XENSTORED_SOCKET"
  pidof xenstored >/dev/null || fail "xenstored exited right after starting"
  xen-init-dom0 || fail "xen-init-dom0 failed"
}

# start_rxenstored [ARGS...] -- rxen's rxenstored as dom0's xenstored (it serves dom0's
# ring and guests), then Debian's xen-init-dom0; its log (-V) goes to
# /var/log/rxenstored.log. No-op if running. Never start Debian's xenstored in that boot.
start_rxenstored() {
  if pidof rxenstored >/dev/null 2>&1 && [ -S "$XENSTORED_SOCKET" ]; then return 0; fi
  log "starting rxenstored"
  rxenstored --socket="$XENSTORED_SOCKET" --pid-file=/var/run/xenstored.pid \
    --log-file=/var/log/rxenstored.log -V "$@" \
    || fail "rxenstored did not start"
  _rx_end=$(( $(uptime_cs) + 3000 ))
  while ! [ -S "$XENSTORED_SOCKET" ] || ! pidof rxenstored >/dev/null 2>&1; do
    if ! pidof rxenstored >/dev/null 2>&1 || [ "$(uptime_cs)" -gt "$_rx_end" ]; then
      [ -f /var/log/rxenstored.log ] && show_file rxenstored /var/log/rxenstored.log
      fail "rxenstored is not serving $XENSTORED_SOCKET"
    fi
    sleep 0.2
  done
  xen-init-dom0 || fail "xen-init-dom0 failed on rxenstored"
}

# start_rxconsoled -- rxen's rxconsoled in place of xenconsoled, in the foreground
# mode (-i) in the background, logging every guest console with timestamps to
# $RXCONSOLED_LOG_DIR/guest-NAME.log; its own messages go to /tmp/rxconsoled.log.
# No-op if running.
RXCONSOLED_LOG_DIR=/var/log/rxen/console
start_rxconsoled() {
  pidof rxconsoled >/dev/null 2>&1 && return 0
  mkdir -p "$RXCONSOLED_LOG_DIR"
  rxconsoled -i --log=guest --log-dir="$RXCONSOLED_LOG_DIR" --timestamp >> /tmp/rxconsoled.log 2>&1 &
  echo $! > /var/run/rxconsoled.pid
  sleep 0.5
  kill -0 "$(cat /var/run/rxconsoled.pid)" 2>/dev/null || { cat /tmp/rxconsoled.log; fail "rxconsoled exited at start"; }
}

# start_xenconsoled -- Debian's xenconsoled logging every guest console to
# $XEN_CONSOLE_LOG_DIR/guest-NAME.log; no-op if running.
start_xenconsoled() {
  if pidof xenconsoled >/dev/null 2>&1; then return 0; fi
  log "starting Debian's xenconsoled"
  mkdir -p "$XEN_CONSOLE_LOG_DIR"
  xenconsoled --log=guest --log-dir="$XEN_CONSOLE_LOG_DIR" --pid-file=/var/run/xenconsoled.pid \
    || fail "xenconsoled did not start"
}

# ---------------------------------------------------------------- guests
# guest_cfg NAME [GUEST_SCRIPT] [KEY=VALUE...] -- write $XEN_CFG_DIR/NAME.cfg for a guest
# running the test bed's kernel and guest initramfs, which runs
# /guest.d/GUEST_SCRIPT.sh (default: default) and powers off; print the file's path.
# KEY=VALUE pairs set memory=, vcpus= or extra_args= (appended to the kernel command
# line); arch=arm32 boots the 32-bit guest kernel and initramfs instead of the arm64
# ones; any other pair is written to the file as is (e.g. 'disk=["..."]').
guest_cfg() {
  _name=$1; _script=${2:-default}
  [ $# -ge 2 ] && shift 2 || shift $#
  _mem=128; _vcpus=1; _xargs=""; _more=""
  _kernel=$GUEST_KERNEL; _ramdisk=$GUEST_RAMDISK
  for _kv in "$@"; do
    case "$_kv" in
      memory=*) _mem=${_kv#memory=} ;;
      vcpus=*) _vcpus=${_kv#vcpus=} ;;
      extra_args=*) _xargs=" ${_kv#extra_args=}" ;;
      arch=arm32) _kernel=$GUEST32_KERNEL; _ramdisk=$GUEST32_RAMDISK ;;
      arch=arm64) _kernel=$GUEST_KERNEL; _ramdisk=$GUEST_RAMDISK ;;
      arch=*) fail "guest_cfg: unknown arch '${_kv#arch=}' (arm64 or arm32)" ;;
      *=*) _more="$_more$_kv
" ;;
      *) fail "guest_cfg: '$_kv' is not KEY=VALUE" ;;
    esac
  done
  mkdir -p "$XEN_CFG_DIR"
  cat > "$XEN_CFG_DIR/$_name.cfg" <<CFG
name = "$_name"
kernel = "$_kernel"
ramdisk = "$_ramdisk"
memory = $_mem
vcpus = $_vcpus
extra = "console=hvc0 rdinit=/init rxen.guest=$_script$_xargs"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
$_more
CFG
  echo "$XEN_CFG_DIR/$_name.cfg"
}

# guest_console_log NAME -- the file where xenconsoled logs guest NAME's console.
guest_console_log() { echo "$XEN_CONSOLE_LOG_DIR/guest-$1.log"; }

# domain_exists NAME -- true while a domain called NAME exists (asks Debian's xl).
domain_exists() { xl domid "$1" >/dev/null 2>&1; }

# wait_domain_gone NAME SECONDS -- wait until domain NAME has been destroyed.
wait_domain_gone() {
  wait_for "$2" "domain $1 to go away" sh -c "! xl domid '$1' >/dev/null 2>&1"
}
