# Guest side of hostile-guest: the honest guest. It loads xen-blkfront and, round
# after round, writes a 4 KiB pattern (unique to the round) with O_DIRECT to one of
# 16 blocks of xvda, reads it back and compares, and prints one console line per
# round, and pings dom0 over its NIC (xen-netfront, rxnetback) once per round. It
# stops when dom0 writes RXEN-HONEST-STOP into the disk's last block.
. /guest-lib.sh
insmod /lib/modules/xen-blkfront.ko || { echo "HONEST: insmod xen-blkfront failed"; exit 1; }
# Its NIC (rxnetback, bridge xenbr0 in dom0 at 169.254.1.1): one ping of dom0 per round.
insmod /lib/modules/xen-netfront.ko || { echo "HONEST: insmod xen-netfront failed"; exit 1; }
wait_path /sys/class/net/eth0 60 || { echo "HONEST: eth0 never appeared"; exit 1; }
ip addr add 169.254.1.2/24 dev eth0 && ip link set eth0 up || { echo "HONEST: eth0 setup failed"; exit 1; }
ping_until 169.254.1.1 60 || { echo "HONEST: dom0 does not answer pings"; exit 1; }
wait_dev xvda 60 || { echo "HONEST: /dev/xvda never appeared"; exit 1; }
blocks=$(( $(cat /sys/block/xvda/size) / 8 ))
stop_block=$((blocks - 1))
echo "HONEST: xvda blocks=$blocks"
r=0 errors=0 pings=0 ping_errors=0
while :; do
  region=$((r % 16))
  awk -v r="$r" 'BEGIN { for (i = 0; i < 128; i++) printf "HONEST-r%06d-l%04d-%010d\n", r, i, r * 128 + i }' > /tmp/pat
  if ! dd if=/tmp/pat of=/dev/xvda bs=4096 seek=$((256 + region)) count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
    errors=$((errors + 1)); echo "HONEST: write of round $r failed: $(head -n 1 /tmp/dd.err)"
  fi
  dd if=/dev/xvda of=/tmp/back bs=4096 skip=$((256 + region)) count=1 iflag=direct 2>/dev/null
  if ! cmp -s /tmp/pat /tmp/back; then
    errors=$((errors + 1)); echo "HONEST: round $r read back MISMATCH"
  fi
  # 1000 bytes of payload there and back.
  if ping -c 1 -W 10 -s 1000 169.254.1.1 >/dev/null 2>&1; then
    pings=$((pings + 1)); net=ok
  else
    ping_errors=$((ping_errors + 1)); net=FAIL
  fi
  echo "HONEST-ROUND $r region=$region up=$(cut -d' ' -f1 /proc/uptime) errors=$errors net=$net"
  r=$((r + 1))
  if dd if=/dev/xvda bs=4096 skip="$stop_block" count=1 iflag=direct 2>/dev/null | grep -q RXEN-HONEST-STOP; then
    break
  fi
  [ "$r" -ge 100000 ] && break
done
echo "HONEST-DONE rounds=$r errors=$errors pings=$pings ping_errors=$ping_errors"
[ "$errors" -eq 0 ] && [ "$ping_errors" -eq 0 ]
