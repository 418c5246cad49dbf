# block-hotplug: rxblkback serves disks hot-plugged with `rxl block-attach` to a guest
# running on real Xen (Debian's xenstored, xenconsoled and xl create for the guest).
# The guest sees them with the right sizes, writes a pattern with O_DIRECT that dom0
# then finds in the backing file, a read-only disk refuses writes, `rxl block-list`
# shows them, and `rxl block-detach` removes a disk from the guest and from xenstore.
# timeout: 300

start_debian_xenstored
start_xenconsoled
load_module xen-gntdev
RW=/tmp/blk-rw.img; RO=/tmp/blk-ro.img
run dd if=/dev/zero of=$RW bs=1M count=16
run dd if=/dev/zero of=$RO bs=1M count=8

# rxblkback logs straight to the serial console, so that a hang shows its last words.
rxblkback &
BLKPID=$!
sleep 0.5
kill -0 $BLKPID 2>/dev/null || fail "rxblkback exited at start"
pass "rxblkback is running (pid $BLKPID)"

name=block-guest
cfg=$(guest_cfg "$name" block-hotplug memory=160)
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
wait_for 120 "the guest to load xen-blkfront" grep -q 'BLK-GUEST-READY' "$log"

# A disk attached before the backend knows it must fail cleanly: nothing listens
# to a type that is not ours, so use a target that does not exist instead.
if rxl block-attach "$domid" "format=raw, vdev=xvdd, access=rw, target=/nonexistent" 2>/tmp/attach.err; then
  fail "attaching a missing file succeeded"
fi
log "refused: $(cat /tmp/attach.err)"
check "a failed attach leaves no nodes" sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid/51760 && ! xenstore-exists /local/domain/$domid/device/vbd/51760"

t0=$(uptime_cs)
run rxl block-attach "$domid" "format=raw, vdev=xvdb, access=rw, target=$RW"
t1=$(uptime_cs)
log "block-attach xvdb took $(( (t1 - t0) * 10 )) ms"
run rxl block-attach "$domid" "$RO,raw,xvdc,ro"
expect_eq "backend state of xvdb" "$(xenstore-read /local/domain/0/backend/rxvbd/$domid/51728/state)" 4
log "xenstore-ls -p of the xvdb nodes:"
xenstore-ls -p /local/domain/$domid/device/vbd/51728
xenstore-ls -p /local/domain/0/backend/rxvbd/$domid/51728
run rxl block-list "$domid"
rxl block-list "$domid" > /tmp/bl
check "block-list shows xl's header" grep -q '^Vdev  BE  handle state evt-ch ring-ref BE-path' /tmp/bl
check "block-list shows xvdb connected" grep -Eq "^51728 0   $domid +4 " /tmp/bl

wait_for 120 "the guest to write its pattern" grep -q 'BLK-GUEST-WROTE' "$log"
show_file "$name" "$log"
check "guest sees xvdb of 16 MiB" grep -q 'BLK: xvdb sectors=32768 ro=0' "$log"
check "guest sees xvdc of 8 MiB read-only" grep -q 'BLK: xvdc sectors=16384 ro=1' "$log"
check "guest read its pattern back" grep -q 'BLK: pattern read back intact' "$log"
check "read-only disk refused the write" grep -q 'BLK: write to read-only xvdc refused' "$log"
n=$(dd if=$RW bs=4096 skip=256 count=1 2>/dev/null | grep -c 'RXEN-BLK-PATTERN-')
expect_eq "pattern lines in dom0's backing file" "$n" 128
check "last pattern line in the backing file" sh -c "dd if=$RW bs=4096 skip=256 count=1 2>/dev/null | grep -q 'RXEN-BLK-PATTERN-00000000000127'"

t0=$(uptime_cs)
run rxl block-detach "$domid" xvdb
t1=$(uptime_cs)
log "block-detach xvdb took $(( (t1 - t0) * 10 )) ms"
check "no backend nodes of xvdb" sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid/51728"
check "no frontend nodes of xvdb" sh -c "! xenstore-exists /local/domain/$domid/device/vbd/51728"
wait_for 60 "the guest to lose xvdb" grep -q 'BLK: xvdb is gone' "$log"
pass "xvdb is gone from the guest"
run rxl block-detach "$domid" xvdc
wait_for 60 "the guest to lose xvdc" grep -q 'BLK: xvdc is gone' "$log"
check "no vbd nodes left" sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid"
wait_domain_gone "$name" 60
show_file "$name" "$log"
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=block-hotplug rc=0' "$log"
kill $BLKPID
