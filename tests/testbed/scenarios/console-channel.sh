# console-channel: a channel (xl.cfg `channel = [ "name=..., connection=pty" ]`) on a
# guest made by `rxl create`: rxl writes the secondary console's nodes
# (device/console/1, backend/console/DOMID/1), the guest's hvc_xen grants its ring,
# rxconsoled connects it through the xenbus handshake and publishes its pty in
# device/console/1/tty; the guest writes to /dev/hvc1 (in rxconsoled's
# guest-NAME-console1.log) and reads a line typed through `rxl console --num 1`.
# timeout: 200

start_debian_xenstored
start_rxconsoled

name=console-chan
cfg=$(guest_cfg "$name" console-channel 'channel = [ "name=org.rxen.test, connection=pty" ]')
run rxl create "$cfg"
domid=$(rxl domid "$name") || fail "no domid for $name"
be=/local/domain/0/backend/console/$domid/1
fe=/local/domain/$domid/device/console/1
expect_eq "channel name in the frontend" "$(xenstore-read "$fe/name")" "org.rxen.test"
expect_eq "channel frontend type (the console daemon's)" "$(xenstore-read "$fe/type")" "xenconsoled"
wait_for 90 "backend $be to be Connected (4)" sh -c "[ \"\$(xenstore-read $be/state)\" = 4 ]"
pass "rxconsoled connected the channel (backend state 4)"
wait_for 20 "frontend $fe to be Connected (4)" sh -c "[ \"\$(xenstore-read $fe/state)\" = 4 ]"
pass "the guest's hvc_xen is Connected too (frontend state 4, ring-ref $(xenstore-read "$fe/ring-ref"))"
tty=$(xenstore-read "$fe/tty")
case "$tty" in
  /dev/pts/*) [ -c "$tty" ] && pass "device/console/1/tty is published: $tty" || fail "$tty is not a device" ;;
  *) fail "device/console/1/tty is '$tty', expected /dev/pts/N" ;;
esac
log1=$RXCONSOLED_LOG_DIR/guest-$name-console1.log
wait_for 60 "the guest's line on hvc1 in $log1" grep -q 'RXEN-CHANNEL-READY on hvc1' "$log1"
pass "what the guest wrote to /dev/hvc1 is in rxconsoled's $log1"
(sleep 2; printf 'typed-into-hvc1\r'; sleep 4; printf '\035') \
  | timeout 60 rxl console --via-pty --num 1 "$name" > /tmp/$name.session 2>&1
rc=$?
show_file "$name session" "/tmp/$name.session"
[ "$rc" -eq 0 ] || fail "rxl console --num 1 exited with status $rc"
log0=$RXCONSOLED_LOG_DIR/guest-$name.log
wait_for 20 "the guest to report the line on hvc0" grep -q 'RXEN-CHANNEL-GOT' "$log0"
check "the guest read the typed line from /dev/hvc1" grep -q 'RXEN-CHANNEL-GOT \[typed-into-hvc1\]' "$log0"
check "its echo on hvc1 came back through rxl console --num 1" \
  grep -q 'RXEN-CHANNEL-ECHO \[typed-into-hvc1\]' "/tmp/$name.session"
wait_domain_gone "$name" 120
show_file "$name hvc0" "$log0"
show_file "$name hvc1" "$log1"
check "the guest script ended with rc=0" grep -q '=== RXEN-GUEST-END script=console-channel rc=0 ===' "$log0"
wait_for 10 "the channel's backend nodes to go" sh -c "! xenstore-read $be/state >/dev/null 2>&1"
pass "no backend/console/$domid left after the domain went"
kill -0 "$(cat /var/run/rxconsoled.pid)" 2>/dev/null || fail "rxconsoled died"
grep 'console1\|backend/console' /tmp/rxconsoled.log | sed 's/^/rxconsoled| /'
