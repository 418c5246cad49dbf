# Guest side of main: say who we are, then use the disk dom0 gave at create time
# (disk=[...] in the config, served by rxblkback): read what dom0 wrote in its first
# sector, write an answer into the second with O_DIRECT and fsync.
. /guest.d/default.sh
insmod /lib/modules/xen-blkfront.ko || { echo "MAIN: insmod xen-blkfront failed"; exit 1; }
i=0
while [ ! -b /dev/xvda ]; do
  i=$((i + 1)); [ "$i" -gt 300 ] && { echo "MAIN: /dev/xvda never appeared"; exit 1; }; sleep 0.2
done
echo "MAIN: xvda sectors=$(cat /sys/block/xvda/size)"
echo "MAIN: read from disk: $(dd if=/dev/xvda bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\000' | head -n 1)"
echo "RXEN-MAIN-FROM-GUEST kernel=$(uname -r)" > /tmp/answer
dd if=/tmp/answer of=/dev/xvda bs=512 seek=1 count=1 conv=sync,fsync oflag=direct 2>/tmp/dd.err \
  || { echo "MAIN: writing the answer failed: $(cat /tmp/dd.err)"; exit 1; }
echo "MAIN: answer written"
