# main: the README's main job -- a guest started from dom0 with its console shown.
# Today the guest is created by Debian's toolstack (xl, xenstored, xenconsoled), exactly
# as in `baseline`, with `xl create -c` attaching the guest's console to dom0's terminal
# (the serial log). When rxen's domain builder and backends land, this scenario becomes
# "rxl create -c a guest with console, disk and network": change create_guest (and the
# daemons in start_toolstack) and add the disk/network checks at the end.
# timeout: 200

name=main-guest

start_toolstack() {
  start_debian_xenstored
  start_xenconsoled
}

# create_guest CFG -- create the guest and show its console until it powers off.
create_guest() {
  timeout 150 xl create -c "$1"
}

start_toolstack
cfg=$(guest_cfg "$name" default)
log "guest config $cfg:"
show_file cfg "$cfg"

echo "----- console of $name (xl create -c) -----"
create_guest "$cfg"
rc=$?
echo
echo "----- end of console of $name -----"
[ "$rc" -eq 0 ] || fail "creating $name with its console attached exited with status $rc"
pass "guest $name ran with its console attached and powered off"
wait_domain_gone "$name" 30
pass "domain $name is gone"
check "the console log kept by the console daemon has the guest's markers" \
  grep -q '=== RXEN-GUEST-END script=default rc=0 ===' "$(guest_console_log "$name")"
