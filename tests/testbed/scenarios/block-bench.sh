# block-bench: rxblkback against the kernel's xen-blkback on the same dom0 file, in one
# guest: xvda through xen-blkback (a loop device set up by a busybox hotplug script
# given to Debian's xl), xvdb through rxblkback (`rxl block-attach`). The guest times
# sequential 1 MiB and random 4 KiB reads and writes with O_DIRECT on each (twice,
# interleaved); dom0 prints each result and the ratio rxblkback / xen-blkback.
# timeout: 480

start_debian_xenstored
start_xenconsoled
load_module loop xen-blkback
IMG=/tmp/bench.img
run dd if=/dev/zero of=$IMG bs=1M count=64

# What Debian's /etc/xen/scripts/block does for a file, in busybox sh.
cat > /tmp/blk-loop-hotplug <<'SCRIPT'
#!/bin/sh
case "$1" in
add)
  file=$(xenstore-read "$XENBUS_PATH/params")
  dev=$(losetup -f) && losetup "$dev" "$file" || exit 1
  xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c '%t:%T' "$dev")" \
    "$XENBUS_PATH/physical-device-path" "$dev" "$XENBUS_PATH/hotplug-status" connected ;;
remove)
  dev=$(xenstore-read "$XENBUS_PATH/physical-device-path") && losetup -d "$dev" ;;
esac
exit 0
SCRIPT
chmod 755 /tmp/blk-loop-hotplug

rxblkback &
BLKPID=$!

name=bench-guest
cfg=$(guest_cfg "$name" block-bench memory=192 "disk=['$IMG,raw,xvda,rw,script=/tmp/blk-loop-hotplug']")
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
wait_for 120 "the guest to see xvda" grep -q 'BENCH-GUEST-READY' "$log"
log "xl-made vbd (kernel xen-blkback), for comparison with rxl's layout:"
xenstore-ls -p /local/domain/$domid/device/vbd/51712
xenstore-ls -p /local/domain/0/backend/vbd/$domid/51712
run rxl block-attach "$domid" "format=raw, vdev=xvdb, access=rw, target=$IMG"
wait_for 400 "the benchmark" grep -q 'BENCH-GUEST-DONE' "$log"
grep '^BENCH ' "$log" > /tmp/bench.txt
cat /tmp/bench.txt
# Sum the two rounds per device and test; ratio of throughputs = kernel time / our time.
awk '{ split($2, d, "="); split($3, t, "="); split($5, c, "=");
       s[t[2] "," d[2]] += c[2]; split($4, u, "="); n[t[2]] = u[2] }
     END { for (k in n) { a = s[k ",xvda"]; b = s[k ",xvdb"];
             if (a > 0 && b > 0) printf "BENCH-RATIO test=%s xen-blkback_cs=%d rxblkback_cs=%d ratio=%.2f\n", k, a, b, a / b } }' /tmp/bench.txt
wait_domain_gone "$name" 60
# The guest powered off with xvdb attached; xl does not know rxl's disk, so rxblkback
# removes its backend directory itself once the domain is gone.
wait_for 20 "rxblkback to remove the dead guest's backend nodes" \
  sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid"
pass "no rxvbd nodes left after the guest died"
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=block-bench rc=0' "$log"
kill $BLKPID
