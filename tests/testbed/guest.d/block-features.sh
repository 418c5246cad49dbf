# Guest side of block-features (2 vCPUs): what blkfront negotiated with rxblkback
# (queues, segments per request, logical block size), then O_DIRECT writes and
# read-backs from each vCPU (one ring each) with requests large enough for
# indirect descriptors, on a 512-byte and a 4096-byte sector disk.
. /guest-lib.sh
insmod /lib/modules/xen-blkfront.ko || { echo "BLKF: insmod xen-blkfront failed"; exit 1; }
echo "=== BLKF-GUEST-READY ==="
wait_dev xvdb 120 || { echo "BLKF: /dev/xvdb never appeared"; exit 1; }
wait_dev xvdc 60 || { echo "BLKF: /dev/xvdc never appeared"; exit 1; }
dmesg | grep 'blkfront: xvd' | sed 's/^/BLKF: dmesg /'
for d in xvdb xvdc; do
  q=/sys/block/$d/queue
  echo "BLKF: $d hw_queues=$(ls /sys/block/$d/mq | wc -l) max_segments=$(cat $q/max_segments)" \
    "logical_block_size=$(cat $q/logical_block_size) physical_block_size=$(cat $q/physical_block_size)" \
    "sectors=$(cat /sys/block/$d/size)"
done
# 256 KiB of numbered 32-byte lines, written with O_DIRECT from vCPU N at 1 MiB * (N + 1).
pattern() { awk -v d="$1" -v c="$2" 'BEGIN { for (i = 0; i < 8192; i++) printf "RXEN-BLKF-%s-%s-%014d\n", d, c, i }'; }
for d in xvdb xvdc; do
  for cpu in 0 1; do
    pattern $d $cpu > /tmp/pat
    if ! taskset -c $cpu dd if=/tmp/pat of=/dev/$d bs=256k seek=$((4 * (cpu + 1))) count=1 oflag=direct 2>/tmp/dd.err; then
      echo "BLKF: $d write on cpu $cpu failed: $(head -1 /tmp/dd.err)"; exit 1
    fi
    taskset -c $cpu dd if=/dev/$d of=/tmp/back bs=256k skip=$((4 * (cpu + 1))) count=1 iflag=direct 2>/dev/null
    if cmp -s /tmp/pat /tmp/back; then
      echo "BLKF: $d pattern of cpu $cpu read back intact"
    else
      echo "BLKF: $d pattern of cpu $cpu MISMATCH"; exit 1
    fi
  done
done
echo "=== BLKF-GUEST-DONE ==="
{ wait_gone /dev/xvdb 120 && wait_gone /dev/xvdc 120; } || { echo "BLKF: disks still present"; exit 1; }
echo "BLKF: disks are gone"
