# console-rxconsoled: rxconsoled in place of xenconsoled. Debian's xenstored, no
# xenconsoled; a guest created by Debian's `xl create` prints its kernel boot log and
# 200 numbered lines; all of it must be in rxconsoled's log file guest-NAME.log, and
# its pty must be published in console/tty while the guest runs.
# timeout: 200


start_debian_xenstored
pidof xenconsoled >/dev/null 2>&1 && fail "xenconsoled is running; this scenario needs a boot without it"
start_rxconsoled
pass "rxconsoled is running in place of xenconsoled (pid $(cat /var/run/rxconsoled.pid))"

name=console-guest
cfg=$(guest_cfg "$name" console-lines extra_args=rxen.lines=200)
run xl create "$cfg"
domid=$(xl domid "$name") || fail "no domid for $name"
wait_for 20 "console/tty of domain $domid" xenstore-read "/local/domain/$domid/console/tty"
tty=$(xenstore-read "/local/domain/$domid/console/tty")
case "$tty" in
  /dev/pts/*) [ -c "$tty" ] && pass "console/tty is published: $tty" || fail "console/tty $tty is not a device" ;;
  *) fail "console/tty is '$tty', expected /dev/pts/N" ;;
esac

wait_domain_gone "$name" 150
pass "domain $name is gone after its poweroff"
log=$RXCONSOLED_LOG_DIR/guest-$name.log
wait_for 10 "rxconsoled's log $log" grep -q 'RXEN-GUEST-END' "$log"
show_file "$name" "$log"
check "kernel boot lines in rxconsoled's log" grep -q 'Booting Linux on physical CPU' "$log"
check "kernel ran /init (log of the whole boot)" grep -q 'Run /init as init process' "$log"
check "guest boot marker in rxconsoled's log" grep -q '=== RXEN-GUEST-BOOT script=console-lines' "$log"
n=$(grep -c 'RXEN-CONSOLE-LINE [0-9]*/200' "$log")
missing=0; i=1
while [ "$i" -le 200 ]; do
  grep -q "RXEN-CONSOLE-LINE $i/200" "$log" || missing=$((missing + 1))
  i=$((i + 1))
done
expect_eq "numbered lines missing from rxconsoled's log" "$missing" 0
log "numbered lines in the log: $n (200 written)"
check "guest script ended with rc=0" grep -q '=== RXEN-GUEST-END script=console-lines rc=0 ===' "$log"
check "lines are timestamped (--timestamp)" grep -Eq '^\[20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:.]+\] === RXEN-GUEST-BOOT' "$log"
kill -0 "$(cat /var/run/rxconsoled.pid)" 2>/dev/null || fail "rxconsoled died"
pass "rxconsoled still runs after the guest went away"
show_file rxconsoled /tmp/rxconsoled.log
