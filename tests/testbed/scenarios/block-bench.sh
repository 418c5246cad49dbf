# block-bench: rxblkback against the kernel's xen-blkback on the same dom0 file, in one
# guest: xvda through xen-blkback (a loop device set up by a busybox hotplug script
# given to Debian's xl); through rxblkback (`rxl block-attach`) first xvdb without
# indirect descriptors (phase 1), then, after a restart of rxblkback with
# --max-indirect-segments 256, xvdc (phase 2). The guest times sequential 1 MiB and
# random 4 KiB reads and writes with O_DIRECT on xvda and rxblkback's disk (twice,
# interleaved), by dd and (tests named tool-*) by one rxen-hostile disk-bench process
# per test, timed in microseconds; dom0 prints each result, the ratio xen-blkback / rxblkback per phase
# and rxblkback's ring stats (requests, batches, time in copies and disk calls).
# timeout: 1200

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

rxblkback --max-indirect-segments 0 &
BLKPID=$!
# A failing check ends the script: stop rxblkback then too (see block-features).
trap 'kill $BLKPID 2>/dev/null' EXIT

name=bench-guest
cfg=$(guest_cfg "$name" block-bench memory=192 "disk=['$IMG,raw,xvda,rw,script=/tmp/blk-loop-hotplug']")
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
wait_for 300 "the guest to see xvda" grep -q 'BENCH-GUEST-READY' "$log"
log "xl-made vbd (kernel xen-blkback), for comparison with rxl's layout:"
xenstore-ls -p /local/domain/$domid/device/vbd/51712
xenstore-ls -p /local/domain/0/backend/vbd/$domid/51712
run rxl block-attach "$domid" "format=raw, vdev=xvdb, access=rw, target=$IMG"
# Shows the guest's results so far when the benchmark does not finish in time.
wait_guest() { # wait_guest SECS MARKER
  _end=$(( $(uptime_cs) + $1 * 100 ))
  while ! grep -q "$2" "$log"; do
    if [ "$(uptime_cs)" -gt "$_end" ]; then show_file "$name" "$log"; fail "timed out after $1 s waiting for $2"; fi
    sleep 1
  done
}
wait_guest 540 'BENCH-PHASE1-DONE'
run rxl block-detach "$domid" xvdb
kill $BLKPID
wait $BLKPID
rxblkback --max-indirect-segments 256 &
BLKPID=$!
run rxl block-attach "$domid" "format=raw, vdev=xvdc, access=rw, target=$IMG"
wait_guest 540 'BENCH-GUEST-DONE'
grep '^BENCH' "$log" > /tmp/bench.txt
cat /tmp/bench.txt
# Sum the two rounds per phase, device and test; ratio of throughputs = kernel time /
# our time (above 1: rxblkback is faster).
grep '^BENCH ' /tmp/bench.txt | awk '{ split($2, d, "="); split($3, t, "="); split($5, c, "="); split($7, p, "=");
       s[p[2] "," t[2] "," d[2]] += c[2]; n[p[2] "," t[2]] = 1 }
     END { for (k in n) { split(k, pk, ","); r = (pk[1] == 1) ? "xvdb" : "xvdc";
             a = s[k ",xvda"]; b = s[k "," r];
             if (a > 0 && b > 0) printf "BENCH-RATIO phase=%s indirect=%s test=%s xen-blkback_cs=%.2f rxblkback_cs=%.2f ratio=%.2f\n", pk[1], (pk[1] == 1) ? "no" : "256", pk[2], a, b, a / b } }' | sort
wait_domain_gone "$name" 120
# The guest powered off with xvdc attached; xl does not know rxl's disk, so rxblkback
# removes its backend directory itself once the domain is gone.
wait_for 20 "rxblkback to remove the dead guest's backend nodes" \
  sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid"
pass "no rxvbd nodes left after the guest died"
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=block-bench rc=0' "$log"
kill $BLKPID
