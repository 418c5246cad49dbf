# main: the README's main job, on rxen's own stack. rxenstored is dom0's xenstored
# (it serves the dom0 kernel's ring and the guest's), rxconsoled the console backend,
# rxblkback the disk backend, rxnetback the network backend, and `rxl create -c`
# builds the guest with a disk (disk=[...]) and a NIC (vif=[...] on bridge xenbr0)
# and attaches its console to dom0's terminal (the serial log) until the guest powers
# off. The guest reads what dom0 wrote on its disk and writes an answer that dom0
# then finds in the backing file, and pings dom0 over link-local addresses through
# the bridge. Debian's xenstored and xenconsoled never run in this boot; Debian's
# xen-init-dom0 writes dom0's own nodes.
# timeout: 200

name=main-guest
disk=/var/lib/rxen/$name-disk.img

pidof xenstored >/dev/null 2>&1 && fail "Debian's xenstored is running; main needs a boot of its own"
start_rxenstored
start_rxconsoled
mkdir -p /var/lib/rxen
rxblkback >> /tmp/rxblkback.log 2>&1 &
echo $! > /var/run/rxblkback.pid
load_module tun bridge || fail "loading tun and bridge"
make_bridges 02:52:58:00:00:0 xenbr0:169.254.1.1
rxnetback >> /tmp/rxnetback.log 2>&1 &
echo $! > /var/run/rxnetback.pid
sleep 0.5
kill -0 "$(cat /var/run/rxblkback.pid)" 2>/dev/null || { cat /tmp/rxblkback.log; fail "rxblkback exited at start"; }
kill -0 "$(cat /var/run/rxnetback.pid)" 2>/dev/null || { cat /tmp/rxnetback.log; fail "rxnetback exited at start"; }
pass "rxenstored, rxconsoled, rxblkback and rxnetback are dom0's xenstored, console, disk and network daemons"

run dd if=/dev/zero of="$disk" bs=1M count=16
echo "RXEN-MAIN-FROM-DOM0" | dd of="$disk" conv=notrunc 2>/dev/null
cfg=$(guest_cfg "$name" main "disk = [ 'format=raw, vdev=xvda, access=rw, target=$disk' ]" \
  "vif = [ 'mac=00:16:3e:4d:41:30, bridge=xenbr0' ]")
log "guest config $cfg:"
show_file cfg "$cfg"

echo "----- console of $name (rxl create -c) -----"
timeout 150 rxl create -c "$cfg"
rc=$?
echo
echo "----- end of console of $name -----"
[ "$rc" -eq 0 ] || fail "rxl create -c exited with status $rc"
pass "guest $name ran with its console attached and powered off"
wait_for 30 "domain $name to be gone" sh -c "! rxl domid $name >/dev/null 2>&1"
pass "domain $name is gone (rxl's monitor destroyed it on poweroff)"
log=$RXCONSOLED_LOG_DIR/guest-$name.log
wait_for 10 "rxconsoled's log of $name" grep -q 'RXEN-GUEST-END' "$log"
check "rxconsoled's log has the guest's kernel boot lines" grep -q 'Booting Linux on physical CPU' "$log"
check "rxconsoled's log has the guest's markers" grep -q '=== RXEN-GUEST-END script=main rc=0 ===' "$log"
answer=$(dd if="$disk" bs=512 skip=1 count=1 2>/dev/null | tr -d '\000' | head -n 1)
log "sector 1 of $disk: $answer"
case "$answer" in
  RXEN-MAIN-FROM-GUEST*) pass "the guest's answer is in the backing file" ;;
  *) fail "the guest's answer is not in the backing file" ;;
esac
check "no xenstore node of $name is left" sh -c "! xenstore-ls /local/domain | grep -q '$name'"
check "no disk backend node is left" sh -c "! xenstore-ls /local/domain/0/backend 2>/dev/null | grep -q rxvbd"
check "the guest pinged dom0 through the bridge" grep -q 'MAIN: ping dom0: 3 packets received' "$log"
check "no NIC backend node is left" sh -c "! xenstore-ls /local/domain/0/backend 2>/dev/null | grep -q rxvif"
show_file rxblkback /tmp/rxblkback.log
show_file rxnetback /tmp/rxnetback.log
