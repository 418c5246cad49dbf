# Guest side of the block-restart scenario: write 256 KiB to xvdb with O_DIRECT and
# fsync (a flush), then keep writing and reading back 256 KiB rounds with O_DIRECT
# (fsync every 4th) while dom0 kills rxblkback with SIGKILL and starts it again;
# every round must complete and read back intact, and all of them once more at
# the end. Then wait until dom0 detaches the disk.
ROUNDS=16
. /guest-lib.sh
insmod /lib/modules/xen-blkfront.ko || { echo "BLK: insmod xen-blkfront failed"; exit 1; }
echo "=== BLK-GUEST-READY ==="
wait_dev xvdb 120 || { echo "BLK: /dev/xvdb never appeared"; exit 1; }
dd if=/dev/urandom of=/tmp/rnd bs=256k count=1 2>/dev/null
sum=$(md5sum < /tmp/rnd | cut -d' ' -f1)
dd if=/tmp/rnd of=/dev/xvdb bs=256k count=1 oflag=direct conv=fsync 2>/tmp/dd.err \
  || { echo "BLK: first write failed: $(cat /tmp/dd.err)"; exit 1; }
echo "BLK: synced md5=$sum"
r=1
while [ $r -le $ROUNDS ]; do
  flags=oflag=direct
  [ $((r % 4)) -eq 0 ] && flags="oflag=direct conv=fsync"
  # shellcheck disable=SC2086 # two dd operands on purpose
  dd if=/tmp/rnd of=/dev/xvdb bs=256k seek=$((4 + r)) count=1 $flags 2>/tmp/dd.err \
    || { echo "BLK: round $r write failed: $(cat /tmp/dd.err)"; exit 1; }
  dd if=/dev/xvdb of=/tmp/back bs=256k skip=$((4 + r)) count=1 iflag=direct 2>/tmp/dd.err \
    || { echo "BLK: round $r read failed: $(cat /tmp/dd.err)"; exit 1; }
  cmp -s /tmp/rnd /tmp/back || { echo "BLK: round $r MISMATCH"; exit 1; }
  echo "BLK: round $r ok"
  r=$((r + 1))
done
r=1
while [ $r -le $ROUNDS ]; do
  dd if=/dev/xvdb of=/tmp/back bs=256k skip=$((4 + r)) count=1 iflag=direct 2>/dev/null
  cmp -s /tmp/rnd /tmp/back || { echo "BLK: round $r MISMATCH on re-read"; exit 1; }
  r=$((r + 1))
done
dd if=/dev/xvdb of=/tmp/back bs=256k count=1 iflag=direct 2>/dev/null
cmp -s /tmp/rnd /tmp/back || { echo "BLK: first write MISMATCH on re-read"; exit 1; }
echo "BLK: all rounds verified"
wait_gone /dev/xvdb 120 || { echo "BLK: xvdb still present"; exit 1; }
echo "BLK: xvdb is gone"
