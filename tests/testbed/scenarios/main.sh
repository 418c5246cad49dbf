# main: the README's main job, on rxen's own stack. rxenstored is dom0's xenstored
# (it serves the dom0 kernel's ring and the guest's), rxconsoled is the console
# backend, and `rxl create -c` builds the guest and attaches its console to dom0's
# terminal (the serial log) until the guest powers off. Debian's xenstored and
# xenconsoled never run in this boot; Debian's xen-init-dom0 writes dom0's own nodes.
# Not yet: the guest's disk (rxblkback) and network (rxnetback).
# timeout: 200

name=main-guest

pidof xenstored >/dev/null 2>&1 && fail "Debian's xenstored is running; main needs a boot of its own"
start_rxenstored
start_rxconsoled
pass "rxenstored and rxconsoled are dom0's xenstored and console daemon"

cfg=$(guest_cfg "$name" default)
log "guest config $cfg:"
show_file cfg "$cfg"

echo "----- console of $name (rxl create -c) -----"
timeout 150 rxl create -c "$cfg"
rc=$?
echo
echo "----- end of console of $name -----"
[ "$rc" -eq 0 ] || fail "rxl create -c exited with status $rc"
pass "guest $name ran with its console attached and powered off"
wait_for 30 "domain $name to be gone" sh -c "! rxl domid $name >/dev/null 2>&1"
pass "domain $name is gone (rxl's monitor destroyed it on poweroff)"
log=$RXCONSOLED_LOG_DIR/guest-$name.log
wait_for 10 "rxconsoled's log of $name" grep -q 'RXEN-GUEST-END' "$log"
check "rxconsoled's log has the guest's kernel boot lines" grep -q 'Booting Linux on physical CPU' "$log"
check "rxconsoled's log has the guest's markers" grep -q '=== RXEN-GUEST-END script=default rc=0 ===' "$log"
check "no xenstore node of $name is left" sh -c "! xenstore-ls /local/domain | grep -q '$name'"
