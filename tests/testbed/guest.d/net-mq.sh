# Guest side of net-mq (2 vCPUs): eth0 (two queues, MTU from the mtu node) and eth1
# (rate-limited). 16 HTTP fetches from dom0 over eth0, each its own TCP flow, then
# the per-queue interrupt counts of eth0; then serve 512 KiB for dom0 to fetch over
# both NICs until dom0 publishes /done.
PORT=8080
. /guest-lib.sh
insmod /lib/modules/xen-netfront.ko || { echo "NETMQ: insmod xen-netfront failed"; exit 1; }
ifconfig lo 127.0.0.1 up
for i in 0 1; do
  wait_path /sys/class/net/eth$i 60 || { echo "NETMQ: eth$i never appeared"; exit 1; }
  ip addr add 169.254.$((i + 1)).2/24 dev eth$i && ip link set eth$i up \
    || { echo "NETMQ: eth$i setup failed"; exit 1; }
done
echo "NETMQ: eth0 mtu=$(cat /sys/class/net/eth0/mtu)"
echo "NETMQ: eth0 queues: $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
for p in 169.254.1.1 169.254.2.1; do
  ping_until "$p" 60 || { echo "NETMQ: $p does not answer"; exit 1; }
done
i=0
while [ $i -lt 16 ]; do
  wget -q -O /dev/null "http://169.254.1.1:$PORT/small" || { echo "NETMQ: fetch $i failed"; exit 1; }
  i=$((i + 1))
done
# /proc/interrupts: IRQ, a count per CPU (2 here), chip, hwirq, type, name;
# netfront names a queue's channels vif<devid>-q<N>[-tx|-rx].
grep -E ' vif0-q[0-9]' /proc/interrupts
grep -E ' vif0-q[0-9]' /proc/interrupts \
  | awk '{ n = $NF; sub(/^vif0-/, "", n); print "NETMQ: irq " n " " $2 + $3 }'
echo "=== NETMQ-FLOWS-DONE ==="
mkdir -p /tmp/www
dd if=/dev/zero of=/tmp/www/blob bs=1024 count=512 2>/dev/null || exit 1
httpd -p "$PORT" -h /tmp/www || exit 1
echo "=== NETMQ-SERVING ==="
i=0
until wget -q -O /dev/null "http://169.254.1.1:$PORT/done" 2>/dev/null; do
  i=$((i + 1)); [ "$i" -gt 300 ] && { echo "NETMQ: dom0 never finished"; exit 1; }
  sleep 1
done
echo "=== NETMQ-DONE ==="
