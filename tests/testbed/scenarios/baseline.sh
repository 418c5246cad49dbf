# baseline: Debian's own toolstack on real Xen, the reference every rxen scenario is
# compared with. Debian's xenstored + xen-init-dom0 + xenconsoled, then `xl create` of a
# domU (Debian's arm64 kernel, the test bed's busybox guest initramfs). The guest prints
# its markers and powers off; they must reach xenconsoled's log, and the domain must go.
# timeout: 200

start_debian_xenstored
start_xenconsoled
pass "Debian's xenstored and xenconsoled are running"

name=baseline-guest
cfg=$(guest_cfg "$name" default vcpus=2 memory=160)
run xl create "$cfg"
domain_exists "$name" && pass "domain $name created (domid $(xl domid "$name"))"
xl list

# The guest powers itself off after printing its markers; on_poweroff=destroy.
wait_domain_gone "$name" 150
pass "domain $name is gone after its poweroff"
xl list

log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" test -s "$log"
show_file "$name" "$log"
check "guest boot marker in xenconsoled's log" grep -q '=== RXEN-GUEST-BOOT script=default' "$log"
check "guest saw the 2 vCPUs and ~160 MiB it was given" \
  grep -Eq 'RXEN-GUEST-HELLO .* cpus=2 memtotal_kb=1[0-6][0-9]{4} ' "$log"
check "guest script ended with rc=0" grep -q '=== RXEN-GUEST-END script=default rc=0 ===' "$log"
