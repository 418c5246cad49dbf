# block-restart: durability and restart of rxblkback. A guest writes 256 KiB to a disk
# served by rxblkback and fsyncs it, then keeps writing and reading back 256 KiB rounds
# with O_DIRECT. dom0 kills rxblkback with SIGKILL in the middle of that I/O, finds
# the flushed data in the backing file, starts rxblkback again: it takes over the
# Connected disk (ring at its current indices, the requests the killed one took but
# never answered replayed from its journal, event channel bound again) and the
# guest's I/O goes on; every round is in the backing file at the end.
# timeout: 300

start_debian_xenstored
start_xenconsoled
load_module xen-gntdev
IMG=/tmp/blk-restart.img
run dd if=/dev/zero of=$IMG bs=1M count=8

rxblkback &
BLKPID=$!
sleep 0.5
kill -0 $BLKPID 2>/dev/null || fail "rxblkback exited at start"

# guest_wait SECS DESC PATTERN -- wait for PATTERN in the guest's console log; on
# a timeout show that log and rxblkback's state before failing.
guest_wait() {
  if ! (wait_for "$1" "$2" grep -Eq "$3" "$log"); then
    show_file "$name" "$log"
    log "rxblkback: $(grep State /proc/$BLKPID/status 2>/dev/null || echo gone)"
    ls -l /run/rxblkback 2>&1
    fail "timed out waiting for $2"
  fi
}

name=restart-guest
cfg=$(guest_cfg "$name" block-restart memory=160)
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
be=/local/domain/0/backend/rxvbd/$domid/51728
guest_wait 120 "the guest to load xen-blkfront" 'BLK-GUEST-READY'
run rxl block-attach "$domid" "format=raw, vdev=xvdb, access=rw, target=$IMG"
guest_wait 120 "the guest's flushed write" 'BLK: synced md5='
guest_wait 120 "the guest's third round" 'BLK: round 3 ok'
kill -9 $BLKPID
wait $BLKPID 2>/dev/null
pass "rxblkback killed with SIGKILL during the guest's I/O ($(grep -c 'BLK: round' "$log") rounds done)"
want=$(sed -n 's/.*BLK: synced md5=\([0-9a-f]*\).*/\1/p' "$log")
got=$(dd if=$IMG bs=256k count=1 2>/dev/null | md5sum | cut -d' ' -f1)
expect_eq "flushed data in the backing file after the kill" "$got" "$want"
expect_eq "backend state after the kill" "$(xenstore-read $be/state)" 4
check "the ring's request journal outlives the process" test -f /run/rxblkback/$domid-51728.journal
sleep 2
before=$(grep -c 'BLK: round' "$log")
log "$before rounds done before the restart"

rxblkback &
BLKPID=$!
guest_wait 180 "the guest to finish its rounds" 'BLK: (all rounds verified|.*(MISMATCH|failed))'
show_file "$name" "$log"
check "every round completed and read back intact" grep -q 'BLK: all rounds verified' "$log"
after=$(grep -c 'BLK: round' "$log")
check "rounds completed after the restart ($before -> $after)" test "$after" -gt "$before"
bad=0
r=1
while [ $r -le 16 ]; do
  s=$(dd if=$IMG bs=256k skip=$((4 + r)) count=1 2>/dev/null | md5sum | cut -d' ' -f1)
  [ "$s" = "$want" ] || { log "round $r: md5 $s in the backing file"; bad=$((bad + 1)); }
  r=$((r + 1))
done
expect_eq "rounds missing from the backing file" "$bad" 0
expect_eq "backend state after the restart" "$(xenstore-read $be/state)" 4
run rxl block-detach "$domid" xvdb
guest_wait 60 "the guest to lose xvdb" 'BLK: xvdb is gone'
check "no vbd nodes left" sh -c "! xenstore-exists /local/domain/0/backend/rxvbd/$domid"
check "the journal is gone after the detach" sh -c "! test -e /run/rxblkback/$domid-51728.journal"
wait_domain_gone "$name" 60
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=block-restart rc=0' "$log"
kill $BLKPID
