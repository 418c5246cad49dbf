# Guest side of main: say who we are, then use the disk dom0 gave at create time
# (disk=[...] in the config, served by rxblkback): read what dom0 wrote in its first
# sector, write an answer into the second with O_DIRECT and fsync; then bring up the
# NIC dom0 gave (vif=[...], served by rxnetback) on 169.254.1.2/24 and ping dom0
# (169.254.1.1 on bridge xenbr0).
. /guest.d/default.sh
. /guest-lib.sh
insmod /lib/modules/xen-blkfront.ko || { echo "MAIN: insmod xen-blkfront failed"; exit 1; }
wait_dev xvda 60 || { echo "MAIN: /dev/xvda never appeared"; exit 1; }
echo "MAIN: xvda sectors=$(cat /sys/block/xvda/size)"
echo "MAIN: read from disk: $(dd if=/dev/xvda bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\000' | head -n 1)"
echo "RXEN-MAIN-FROM-GUEST kernel=$(uname -r)" > /tmp/answer
dd if=/tmp/answer of=/dev/xvda bs=512 seek=1 count=1 conv=sync,fsync oflag=direct 2>/tmp/dd.err \
  || { echo "MAIN: writing the answer failed: $(cat /tmp/dd.err)"; exit 1; }
echo "MAIN: answer written"
insmod /lib/modules/xen-netfront.ko || { echo "MAIN: insmod xen-netfront failed"; exit 1; }
wait_path /sys/class/net/eth0 60 || { echo "MAIN: eth0 never appeared"; exit 1; }
echo "MAIN: eth0 mac=$(cat /sys/class/net/eth0/address)"
ip addr add 169.254.1.2/24 dev eth0 && ip link set eth0 up || { echo "MAIN: eth0 setup failed"; exit 1; }
ping_until 169.254.1.1 60 || { echo "MAIN: dom0 does not answer pings"; exit 1; }
ping -c 3 169.254.1.1 > /tmp/ping.out 2>&1 || { cat /tmp/ping.out; echo "MAIN: ping dom0 failed"; exit 1; }
echo "MAIN: ping dom0: $(grep -o '[0-9]* packets received' /tmp/ping.out)"
