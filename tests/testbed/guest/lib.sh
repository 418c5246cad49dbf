# Helpers for the guest scripts (guest.d/*.sh), which source it as /guest-lib.sh.
# The guest is busybox: POSIX sh.

# wait_until SECONDS COMMAND... -- run COMMAND every 0.2 s until it succeeds; 1 if it
# has not after SECONDS.
wait_until() {
  _limit=$(($1 * 5)); shift
  _n=0
  until "$@"; do
    _n=$((_n + 1)); [ "$_n" -gt "$_limit" ] && return 1; sleep 0.2
  done
  return 0
}

# wait_path PATH SECONDS -- until PATH exists.
wait_path() { wait_until "$2" [ -e "$1" ]; }
# wait_gone PATH SECONDS -- until PATH no longer exists.
wait_gone() { wait_until "$2" [ ! -e "$1" ]; }
# wait_dev NAME SECONDS -- until the block device /dev/NAME exists.
wait_dev() { wait_until "$2" [ -b "/dev/$1" ]; }

# has_carrier IFACE -- netfront has connected the NIC (carrier on).
has_carrier() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
# wait_carrier IFACE SECONDS -- until the NIC has carrier: before that a ping fails
# at once, so that ping_until's tries run out in seconds while a loaded host's
# netfront still connects.
wait_carrier() { wait_until "$2" has_carrier "$1"; }

# ping_until ADDR SECONDS -- until ADDR answers a ping (each try waits up to 1 s).
ping_until() {
  _n=0
  until ping -c 1 -W 1 "$1" >/dev/null 2>&1; do
    _n=$((_n + 1)); [ "$_n" -gt "$2" ] && return 1
  done
  return 0
}
