# net-basic: rxnetback serves a guest's NICs on real Xen (Debian's xenstored and
# xenconsoled, `rxl create` with vif=[...]). The guest's eth0 has the configured MAC;
# dom0 (bridge xenbr0, 169.254.1.1/24) and the guest (169.254.1.2) ping each other;
# 100 MiB go each way through TCP and arrive intact (md5 of each stream compared); a
# second NIC hot-plugged with `rxl network-attach` on bridge xenbr1 appears as eth1
# and carries pings both ways; `rxl network-detach` removes it from the guest, from
# xenstore and from dom0 (its TAP); the guest's end removes the rest.
# timeout: 1200

# On failure, show what the guest and rxnetback said first.
fail() {
  [ -n "${log:-}" ] && [ -f "$log" ] && show_file guest "$log"
  [ -f /tmp/rxnetback.log ] && show_file rxnetback /tmp/rxnetback.log
  df / 2>/dev/null
  echo "FAIL: $*"
  exit 1
}

start_debian_xenstored
start_xenconsoled
load_module xen-gntdev tun bridge || fail "loading xen-gntdev, tun, bridge"
make_bridges 02:52:58:00:00:0 xenbr0:169.254.1.1 xenbr1:169.254.2.1

rxnetback >> /tmp/rxnetback.log 2>&1 &
NETPID=$!
sleep 0.5
kill -0 $NETPID 2>/dev/null || { cat /tmp/rxnetback.log; fail "rxnetback exited at start"; }
pass "rxnetback is running (pid $NETPID)"

NET_BLOCKS=100
total=$((NET_BLOCKS * (1048576 + 16)))
gen() {
  _i=0
  while [ $_i -lt $NET_BLOCKS ]; do printf 'RXEN-BLOCK-%04d\n' $_i; cat "$1"; _i=$((_i + 1)); done
}
# Guest to dom0: hash exactly the stream's length, then close the connection.
mkfifo /tmp/g2d.fifo
# Hashed on the fly, not stored: dom0's root is a RAM file system that a 100 MiB
# copy fills up (it did, at 96 MiB, once the base image grew).
head -c $total < /tmp/g2d.fifo | md5sum > /tmp/g2d.md5 &
# nc's stdin must stay open: at its EOF nc half-closes, and the sender's busybox nc
# ends on the network's EOF.
sleep 100000 | nc -l -p 5001 > /tmp/g2d.fifo &
G2D_NC=$!

# The dom0 to guest stream and its md5, hashed while the rest goes on.
dd if=/dev/urandom of=/tmp/blk bs=1024 count=1024 2>/dev/null
(gen /tmp/blk | md5sum > /tmp/d2g.md5.tmp && mv /tmp/d2g.md5.tmp /tmp/d2g.md5) &

name=net-guest
mac0=00:16:3e:4e:45:30
cfg=$(guest_cfg "$name" net-basic memory=192 "vif = [ 'mac=$mac0, bridge=xenbr0' ]")
show_file cfg "$cfg"
run rxl create "$cfg"
domid=$(rxl domid "$name") || fail "rxl domid $name"
log=$(guest_console_log "$name")
wait_for 120 "the NIC to connect" sh -c "[ \"\$(xenstore-read /local/domain/0/backend/rxvif/$domid/0/state)\" = 4 ]"
pass "the NIC's backend is Connected"
check "TAP vif$domid.0 is a port of xenbr0" test -e "/sys/class/net/xenbr0/brif/vif$domid.0"
wait_for 180 "the guest's eth0 and ping" grep -q 'NET-GUEST-UP' "$log"
check "guest's eth0 has the configured MAC" grep -q "NET: eth0 mac=$mac0" "$log"
check "guest pinged dom0" grep -q 'NET: ping dom0: 3 packets received' "$log"
ping -c 3 169.254.1.2 > /tmp/ping.out 2>&1 || { cat /tmp/ping.out; fail "dom0 cannot ping the guest"; }
pass "dom0 pinged the guest: $(grep -o '[0-9]* packets received' /tmp/ping.out)"

wait_for 60 "the guest to start sending" grep -q 'NET: g2d sending' "$log"
t0=$(uptime_cs)
wait_for 600 "100 MiB from the guest" test -s /tmp/g2d.md5
t1=$(uptime_cs)
kill $G2D_NC 2>/dev/null
ms=$(( (t1 - t0) * 10 ))
log "guest to dom0: $total bytes in $ms ms ($(( total / 1024 * 1000 / (ms + 1) )) KiB/s)"
wait_for 300 "the guest's md5 of what it sent" grep -q 'NET: g2d md5 ' "$log"
want=$(sed -n 's/.*NET: g2d md5 \([0-9a-f]*\).*/\1/p' "$log" | head -n 1)
expect_eq "md5 of the 100 MiB guest to dom0" "$(cut -d' ' -f1 /tmp/g2d.md5)" "$want"

wait_for 300 "the md5 of the dom0 to guest stream" test -s /tmp/d2g.md5
want=$(cut -d' ' -f1 /tmp/d2g.md5)
wait_for 60 "the guest to listen" grep -q 'NET-LISTENING-5002' "$log"
t0=$(uptime_cs)
gen /tmp/blk | nc 169.254.1.2 5002 &
D2G_NC=$!
wait_for 600 "100 MiB to the guest" grep -q 'NET: d2g md5 ' "$log"
t1=$(uptime_cs)
kill $D2G_NC 2>/dev/null
ms=$(( (t1 - t0) * 10 ))
log "dom0 to guest: $total bytes in $ms ms ($(( total / 1024 * 1000 / (ms + 1) )) KiB/s)"
got=$(sed -n 's/.*NET: d2g md5 \([0-9a-f]*\).*/\1/p' "$log" | head -n 1)
expect_eq "md5 of the 100 MiB dom0 to guest" "$got" "$want"

wait_for 60 "the guest to wait for eth1" grep -q 'NET-WAIT-ETH1' "$log"
mac1=00:16:3e:4e:45:31
run rxl network-attach "$domid" "mac=$mac1, bridge=xenbr1"
run rxl network-list "$domid"
wait_for 120 "the guest's eth1 and ping" grep -q 'NET-ETH1-UP' "$log"
check "guest's eth1 has the hot-plugged MAC" grep -q "NET: eth1 mac=$mac1" "$log"
check "guest pinged dom0 over eth1" grep -q 'NET: ping dom0 over eth1: 3 packets received' "$log"
check "TAP vif$domid.1 is a port of xenbr1" test -e "/sys/class/net/xenbr1/brif/vif$domid.1"
ping -c 3 169.254.2.2 > /tmp/ping.out 2>&1 || { cat /tmp/ping.out; fail "dom0 cannot ping the guest's eth1"; }
pass "dom0 pinged the guest's eth1: $(grep -o '[0-9]* packets received' /tmp/ping.out)"

run rxl network-detach "$domid" 1
check "no backend nodes of NIC 1" sh -c "! xenstore-exists /local/domain/0/backend/rxvif/$domid/1"
check "no frontend nodes of NIC 1" sh -c "! xenstore-exists /local/domain/$domid/device/vif/1"
wait_for 30 "TAP vif$domid.1 to go" sh -c "! test -e /sys/class/net/vif$domid.1"
pass "TAP vif$domid.1 is gone"
wait_for 60 "the guest to lose eth1" grep -q 'NET: eth1 is gone' "$log"
pass "eth1 is gone from the guest"

wait_domain_gone "$name" 60
show_file "$name" "$log"
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=net-basic rc=0' "$log"
wait_for 30 "the NIC's nodes to go" sh -c "! xenstore-exists /local/domain/0/backend/rxvif/$domid"
pass "no rxvif node of the guest is left"
wait_for 30 "TAP vif$domid.0 to go" sh -c "! test -e /sys/class/net/vif$domid.0"
pass "TAP vif$domid.0 is gone"
kill -0 $NETPID 2>/dev/null || fail "rxnetback died"
kill $NETPID
show_file rxnetback /tmp/rxnetback.log
