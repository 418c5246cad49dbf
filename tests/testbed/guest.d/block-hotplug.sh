# Guest side of the block-hotplug scenario: load xen-blkfront, wait for the disks
# dom0 hot-plugs through rxl/rxblkback, write a pattern with O_DIRECT to xvdb and
# read it back, check that the read-only xvdc refuses writes, then wait until dom0
# detaches both.
. /guest-lib.sh
insmod /lib/modules/xen-blkfront.ko || { echo "BLK: insmod xen-blkfront failed"; exit 1; }
echo "=== BLK-GUEST-READY ==="
wait_dev xvdb 120 || { echo "BLK: /dev/xvdb never appeared"; exit 1; }
wait_dev xvdc 60 || { echo "BLK: /dev/xvdc never appeared"; exit 1; }
echo "BLK: xvdb sectors=$(cat /sys/block/xvdb/size) ro=$(cat /sys/block/xvdb/ro)"
echo "BLK: xvdc sectors=$(cat /sys/block/xvdc/size) ro=$(cat /sys/block/xvdc/ro)"
i=0
while [ $i -lt 128 ]; do printf 'RXEN-BLK-PATTERN-%014d\n' $i; i=$((i + 1)); done > /tmp/pat
if dd if=/tmp/pat of=/dev/xvdb bs=4096 seek=256 count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
  echo "BLK: wrote the pattern with O_DIRECT"
else
  echo "BLK: dd oflag=direct failed: $(cat /tmp/dd.err)"; exit 1
fi
sync
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/xvdb of=/tmp/back bs=4096 skip=256 count=1 iflag=direct 2>/dev/null
if cmp -s /tmp/pat /tmp/back; then echo "BLK: pattern read back intact"; else echo "BLK: pattern MISMATCH"; exit 1; fi
if dd if=/tmp/pat of=/dev/xvdc bs=4096 count=1 oflag=direct 2>/tmp/dd.err; then
  echo "BLK: write to read-only xvdc SUCCEEDED"
else
  echo "BLK: write to read-only xvdc refused: $(head -1 /tmp/dd.err)"
fi
echo "=== BLK-GUEST-WROTE ==="
wait_gone /dev/xvdb 120 || { echo "BLK: xvdb still present"; exit 1; }
echo "BLK: xvdb is gone"
wait_gone /dev/xvdc 120 || { echo "BLK: xvdc still present"; exit 1; }
echo "BLK: xvdc is gone"
