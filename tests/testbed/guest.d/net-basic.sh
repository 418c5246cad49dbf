# Guest side of net-basic: load xen-netfront, bring up eth0 (served by rxnetback) on
# 169.254.1.2/24, ping dom0, send 100 MiB to dom0 and receive 100 MiB from it (md5 of
# each stream printed for dom0 to compare), then use a second NIC dom0 hot-plugs
# (eth1, 169.254.2.2/24 on another bridge) and wait until dom0 detaches it.
NET_BLOCKS=100
# gen FILE -- the transfer stream: NET_BLOCKS numbered copies of a 1 MiB block.
gen() {
  _i=0
  while [ $_i -lt $NET_BLOCKS ]; do printf 'RXEN-BLOCK-%04d\n' $_i; cat "$1"; _i=$((_i + 1)); done
}
. /guest-lib.sh
insmod /lib/modules/xen-netfront.ko || { echo "NET: insmod xen-netfront failed"; exit 1; }
wait_path /sys/class/net/eth0 60 || { echo "NET: eth0 never appeared"; exit 1; }
echo "NET: eth0 mac=$(cat /sys/class/net/eth0/address)"
ip addr add 169.254.1.2/24 dev eth0 && ip link set eth0 up || { echo "NET: eth0 setup failed"; exit 1; }
wait_carrier eth0 120 || { echo "NET: eth0 never connected"; exit 1; }
ping_until 169.254.1.1 60 || { echo "NET: dom0 does not answer pings"; exit 1; }
ping -c 3 169.254.1.1 > /tmp/ping.out 2>&1 || { cat /tmp/ping.out; echo "NET: ping dom0 failed"; exit 1; }
echo "NET: ping dom0: $(grep -o '[0-9]* packets received' /tmp/ping.out)"
echo "=== NET-GUEST-UP ==="

# Guest to dom0: dom0 listens on 5001 and prints what it received.
dd if=/dev/urandom of=/tmp/blk bs=1024 count=1024 2>/dev/null
mkfifo /tmp/g2d.fifo
md5sum < /tmp/g2d.fifo > /tmp/g2d.md5 &
echo "NET: g2d sending"
gen /tmp/blk | tee /tmp/g2d.fifo | nc 169.254.1.1 5001
wait_until 120 [ -s /tmp/g2d.md5 ] || { echo "NET: no md5 of the sent stream"; exit 1; }
echo "NET: g2d sent"
echo "NET: g2d md5 $(cut -d' ' -f1 /tmp/g2d.md5)"

# Dom0 to guest: listen on 5002, hash exactly the stream's length, then close.
total=$((NET_BLOCKS * (1048576 + 16)))
mkfifo /tmp/d2g.fifo
head -c $total < /tmp/d2g.fifo | md5sum > /tmp/d2g.md5 &
# nc's stdin must stay open: at its EOF nc half-closes, and the sender's busybox nc
# ends on the network's EOF.
sleep 100000 | nc -l -p 5002 > /tmp/d2g.fifo &
ncpid=$!
sleep 1
echo "=== NET-LISTENING-5002 ==="
wait_until 300 [ -s /tmp/d2g.md5 ] || { echo "NET: d2g stream never completed"; exit 1; }
kill $ncpid 2>/dev/null
echo "NET: d2g md5 $(cut -d' ' -f1 /tmp/d2g.md5)"

# A second NIC, hot-plugged by dom0.
echo "=== NET-WAIT-ETH1 ==="
wait_path /sys/class/net/eth1 120 || { echo "NET: eth1 never appeared"; exit 1; }
echo "NET: eth1 mac=$(cat /sys/class/net/eth1/address)"
ip addr add 169.254.2.2/24 dev eth1 && ip link set eth1 up || { echo "NET: eth1 setup failed"; exit 1; }
wait_carrier eth1 120 || { echo "NET: eth1 never connected"; exit 1; }
ping_until 169.254.2.1 60 || { echo "NET: dom0 does not answer pings on eth1"; exit 1; }
before=$(cat /sys/class/net/eth1/statistics/rx_packets)
ping -c 3 169.254.2.1 > /tmp/ping1.out 2>&1 || { cat /tmp/ping1.out; echo "NET: ping over eth1 failed"; exit 1; }
after=$(cat /sys/class/net/eth1/statistics/rx_packets)
echo "NET: ping dom0 over eth1: $(grep -o '[0-9]* packets received' /tmp/ping1.out), eth1 rx packets +$((after - before))"
echo "=== NET-ETH1-UP ==="
wait_gone /sys/class/net/eth1 120 || { echo "NET: eth1 still present"; exit 1; }
echo "NET: eth1 is gone"
