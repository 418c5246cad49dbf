# net-mq: rxnetback's multi-queue, split event channels, mtu= and rate= on real Xen
# (Debian's xenstored and xenconsoled, `rxl create`). A 2-vCPU guest has eth0
# (bridge xenbr0, mtu=9000) and eth1 (bridge xenbr1, rate=64KB/s). netfront
# connects eth0 with two queues and split event channels; 16 HTTP fetches (16 TCP
# flows) over eth0 must use both queues (the guest's per-queue interrupt counts
# and rxnetback's per-queue counters); the TAP carries MTU 9000;
# dom0 fetches 512 KiB from the guest over eth0 and over eth1, and the eth1
# transfer takes at least as long as the rate allows.
# timeout: 600

fail() {
  [ -n "${log:-}" ] && [ -f "$log" ] && show_file guest "$log"
  [ -f /tmp/rxnetback.log ] && show_file rxnetback /tmp/rxnetback.log
  echo "FAIL: $*"
  exit 1
}

PORT=8080
start_debian_xenstored
start_xenconsoled
load_module xen-gntdev tun bridge || fail "loading xen-gntdev, tun, bridge"
make_bridges 02:52:58:00:01:0 xenbr0:169.254.1.1 xenbr1:169.254.2.1
# A bridge takes the smallest MTU of its ports: xenbr0's own may stay 1500, but
# the TAP gets the NIC's.
ifconfig lo 127.0.0.1 up
mkdir -p /tmp/www
dd if=/dev/zero of=/tmp/www/small bs=1024 count=64 2>/dev/null
httpd -p $PORT -h /tmp/www || fail "httpd"

rxnetback >> /tmp/rxnetback.log 2>&1 &
NETPID=$!
sleep 0.5
kill -0 $NETPID 2>/dev/null || fail "rxnetback exited at start"

name=net-mq
cfg=$(guest_cfg "$name" net-mq memory=192 vcpus=2 \
  "vif = [ 'mac=00:16:3e:4d:51:30, bridge=xenbr0, mtu=9000', 'mac=00:16:3e:4d:51:31, bridge=xenbr1, rate=64KB/s' ]")
run rxl create "$cfg"
domid=$(rxl domid "$name") || fail "rxl domid $name"
log=$(guest_console_log "$name")
be=/local/domain/0/backend/rxvif/$domid
fe=/local/domain/$domid/device/vif
expect_eq "backend mtu node of NIC 0" "$(xenstore-read $be/0/mtu)" 9000
expect_eq "frontend mtu node of NIC 0" "$(xenstore-read $fe/0/mtu)" 9000
expect_eq "frontend mtu node of NIC 1 (default)" "$(xenstore-read $fe/1/mtu)" 1500
for d in 0 1; do
  wait_for 150 "NIC $d to connect" sh -c "[ \"\$(xenstore-read $be/$d/state)\" = 4 ]"
done
pass "both NICs are Connected"
expect_eq "queues netfront asked for on eth0" "$(xenstore-read $fe/0/multi-queue-num-queues)" 2
check "split event channels on queue 1" xenstore-exists "$fe/0/queue-1/event-channel-rx"
expect_eq "MTU of TAP vif$domid.0" "$(cat /sys/class/net/vif$domid.0/mtu)" 9000
check "TAP vif$domid.0 has a second queue" test -e "/sys/class/net/vif$domid.0/queues/rx-1"

wait_for 300 "the guest's flows over eth0" grep -q 'NETMQ-FLOWS-DONE' "$log"
tr -d '\r' < "$log" | grep '^NETMQ' || true
log "the guest's eth0 MTU (netfront may or may not take the mtu node): $(tr -d '\r' < "$log" | sed -n 's/^NETMQ: eth0 mtu=//p')"
for q in 0 1; do
  c=$(tr -d '\r' < "$log" | sed -n "s/^NETMQ: irq q$q-rx \([0-9]*\)$/\1/p" | head -n 1)
  [ -n "$c" ] && [ "$c" -gt 0 ] || fail "no receive interrupts on the guest's eth0 queue $q ('$c')"
  pass "guest's eth0 queue $q received (rx interrupts: $c)"
done

# rate=: dom0 fetches 512 KiB from the guest, over eth0 (no limit) and eth1.
wait_for 120 "the guest's httpd" grep -q 'NETMQ-SERVING' "$log"
rate=$(xenstore-read $be/1/rate) || fail "no rate node on NIC 1"
bytes=${rate%,*} usecs=${rate#*,}
size=524288
for peer in 169.254.1.2 169.254.2.2; do
  t0=$(uptime_cs)
  run wget -q -O /dev/null "http://$peer:$PORT/blob"
  echo "$peer $(( $(uptime_cs) - t0 ))" >> /tmp/rate.txt
done
cs0=$(sed -n 's/^169.254.1.2 //p' /tmp/rate.txt)
cs1=$(sed -n 's/^169.254.2.2 //p' /tmp/rate.txt)
# At most RATE_MAX_BURST (128 KiB) goes before the credit runs out, the rest at
# the rate.
min_cs=$(( (size - 131072) / bytes * usecs / 10000 ))
log "512 KiB guest to dom0: eth0 ${cs0} cs, eth1 (rate $bytes bytes per $usecs us) ${cs1} cs, at least $min_cs cs by the rate"
[ "$cs1" -ge "$min_cs" ] || fail "eth1 sent 512 KiB in $cs1 cs, faster than its rate allows ($min_cs cs)"
pass "rate= holds eth1 to its limit: 512 KiB in $cs1 cs (>= $min_cs cs)"
touch /tmp/www/done

wait_domain_gone "$name" 120
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=net-mq rc=0' "$log"
wait_for 30 "the NICs' nodes to go" sh -c "! xenstore-exists $be"
kill -0 $NETPID 2>/dev/null || fail "rxnetback died"
kill $NETPID
sleep 1
show_file rxnetback /tmp/rxnetback.log
for q in 0 1; do
  line=$(grep "$be/0: tx .*(queue $q)" /tmp/rxnetback.log | tail -n 1)
  rx=$(echo "$line" | sed -n 's/.*; rx \([0-9]*\) packets.*/\1/p')
  [ -n "$rx" ] && [ "$rx" -gt 0 ] || fail "rxnetback's queue $q of NIC 0 received nothing ('$line')"
  pass "rxnetback's queue $q of NIC 0 carried $rx received frames"
done
