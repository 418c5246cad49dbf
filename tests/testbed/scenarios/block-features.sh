# block-features: rxblkback's negotiated features on real Xen with Linux blkfront, in a
# 2-vCPU guest: multi-queue (one ring per vCPU: multi-queue-max-queues 2), indirect
# descriptors (feature-max-indirect-segments 256: blkfront's requests carry more than
# 11 segments) and a 4096-byte logical sector disk (`sector-size=4096` in the disk
# spec: sector-size 4096, sectors still in 512-byte units). The guest writes and reads
# back 256 KiB with O_DIRECT from each vCPU on each disk; dom0 finds every pattern in
# the backing files and rxblkback's ring stats show both queues and indirect requests.
# timeout: 480

start_debian_xenstored
start_xenconsoled
load_module xen-gntdev
A=/tmp/blkf-512.img; B=/tmp/blkf-4k.img
run dd if=/dev/zero of=$A bs=1M count=16
run dd if=/dev/zero of=$B bs=1M count=16
BLKLOG=/tmp/rxblkback-features.log
rxblkback --max-queues 2 --max-indirect-segments 256 2>$BLKLOG &
BLKPID=$!
# A failing check ends the script: stop this rxblkback then too, so that it does not
# serve the next scenario's disks next to that scenario's own.
trap 'kill $BLKPID 2>/dev/null' EXIT
sleep 0.5
kill -0 $BLKPID 2>/dev/null || { show_file rxblkback $BLKLOG; fail "rxblkback exited at start"; }

name=blkf-guest
cfg=$(guest_cfg "$name" block-features memory=160 vcpus=2)
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
wait_for 300 "the guest to load xen-blkfront" grep -q 'BLKF-GUEST-READY' "$log"
run rxl block-attach "$domid" "format=raw, vdev=xvdb, access=rw, target=$A"
run rxl block-attach "$domid" "format=raw, vdev=xvdc, access=rw, sector-size=4096, target=$B"
BE=/local/domain/0/backend/rxvbd/$domid
FE=/local/domain/$domid/device/vbd
expect_eq "xvdb backend state" "$(xenstore-read $BE/51728/state)" 4
expect_eq "xvdb multi-queue-max-queues" "$(xenstore-read $BE/51728/multi-queue-max-queues)" 2
expect_eq "xvdb queues the frontend asked for" "$(xenstore-read $FE/51728/multi-queue-num-queues)" 2
check "xvdb's frontend wrote queue-1's ring" xenstore-read $FE/51728/queue-1/ring-ref
expect_eq "xvdb feature-max-indirect-segments" "$(xenstore-read $BE/51728/feature-max-indirect-segments)" 256
expect_eq "xvdc sector-size" "$(xenstore-read $BE/51744/sector-size)" 4096
expect_eq "xvdc physical-sector-size" "$(xenstore-read $BE/51744/physical-sector-size)" 4096
expect_eq "xvdc sectors (512-byte units)" "$(xenstore-read $BE/51744/sectors)" 32768
expect_eq "xvdb sector-size" "$(xenstore-read $BE/51728/sector-size)" 512

wait_for 240 "the guest's writes" grep -q 'BLKF-GUEST-DONE' "$log"
show_file "$name" "$log"
check "xvdb has 2 hardware queues in the guest" grep -q 'BLKF: xvdb hw_queues=2 ' "$log"
segs=$(sed -n 's/.*BLKF: xvdb hw_queues=[0-9]* max_segments=\([0-9]*\) .*/\1/p' "$log")
check "blkfront takes more than 11 segments per request (indirect): $segs" test "${segs:-0}" -gt 11
check "xvdc has 4096-byte logical blocks" grep -q 'BLKF: xvdc .*logical_block_size=4096 .*sectors=32768' "$log"
check "xvdb has 512-byte logical blocks" grep -q 'BLKF: xvdb .*logical_block_size=512 ' "$log"
for d in xvdb xvdc; do
  for cpu in 0 1; do
    check "$d: cpu $cpu's pattern read back intact in the guest" grep -q "BLKF: $d pattern of cpu $cpu read back intact" "$log"
  done
done
for f in "$A xvdb" "$B xvdc"; do
  set -- $f
  for cpu in 0 1; do
    n=$(dd if="$1" bs=256k skip=$((4 * (cpu + 1))) count=1 2>/dev/null | grep -c "^RXEN-BLKF-$2-$cpu-")
    expect_eq "$2: cpu $cpu's pattern lines in dom0's backing file" "$n" 8192
  done
done
wait_for 20 "rxblkback's ring stats of queue 1" grep -q "rxvbd/$domid/51728/queue-1: ring stats: requests=[1-9]" $BLKLOG
run rxl block-detach "$domid" xvdb
run rxl block-detach "$domid" xvdc
check "no vbd nodes left" sh -c "! xenstore-exists $BE"
show_file rxblkback $BLKLOG
check "queue 0 of xvdb served requests" grep -q "rxvbd/$domid/51728/queue-0: ring stats: requests=[1-9]" $BLKLOG
check "xvdb served indirect requests" grep -q "rxvbd/$domid/51728/queue-[01]: ring stats: .* indirect=[1-9]" $BLKLOG
wait_domain_gone "$name" 60
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=block-features rc=0' "$log"
kill $BLKPID
