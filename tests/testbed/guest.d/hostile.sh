# Guest side of hostile-guest: the hostile guest. It loads xen-evtchn and
# xen-gntalloc but not xen-blkfront or xen-netfront, so that rxen-hostile is its
# disk's and its NIC's frontend, and runs every attack of rxen-hostile (block, net,
# console flood, xenstore) against dom0's daemons. rxen.honest=DOMID on the kernel
# command line names the honest guest.
honest=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in rxen.honest=*) honest=${arg#rxen.honest=} ;; esac
done
[ -n "$honest" ] || { echo "HOSTILE: no rxen.honest= on the command line"; exit 1; }
for m in xen-evtchn xen-gntalloc; do
  insmod "/lib/modules/$m.ko" || { echo "HOSTILE: insmod $m failed"; exit 1; }
done
for d in xenbus evtchn gntalloc; do
  [ -e "/dev/xen/$d" ] || { echo "HOSTILE: no /dev/xen/$d"; exit 1; }
done
echo "=== RXEN-HOSTILE-START ==="
rc=0
# xenstore last: its watch storm is the heaviest on this guest's own connection.
rxen-hostile block --devid 51712 || rc=1
rxen-hostile net --devid 0 --me 169.254.1.66 --peer 169.254.1.1 || rc=1
rxen-hostile console-flood --seconds 8 || rc=1
rxen-hostile xenstore --honest "$honest" || rc=1
echo "=== RXEN-HOSTILE-END rc=$rc ==="
exit "$rc"
