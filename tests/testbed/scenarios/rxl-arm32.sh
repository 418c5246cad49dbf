# rxl-arm32: `rxl create -c` of a 32-bit guest: Debian's armhf LPAE kernel (a zImage,
# loaded at RAM + 0x8000, the domain made 32-bit with XEN_DOMCTL_set_address_size,
# vCPU 0 started in AArch32 SVC mode with r2 = DTB) and an armhf busybox initramfs with
# the same /init and guest scripts as the arm64 guest. Debian's xenstored and
# xenconsoled are the backends. The guest's console (attached by rxl, shown live on
# the serial log) says armv7l, the DTB it received is word for word the one rxl wrote
# (but for the rng-seed Linux NOPs out) and passes check-dtb; rxl's monitor destroys it
# on poweroff and no xenstore node is left. One vCPU, pinned to pCPU 1 with xl's
# `cpus` key: 32-bit guests whose vCPUs run on more than one of the emulated pCPUs
# crash at random under QEMU's TCG, with Debian's xl too (docs/ARM32.md); xl's own
# `xl vcpu-list` checks that rxl set the pinning.
# timeout: 240

start_debian_xenstored
start_xenconsoled
host_gic=GICv2
grep -q GICv3 /proc/interrupts && host_gic=GICv3
log "host GIC: $host_gic"

# xs_domains -- the domains, /vm entries and console backends xenstore knows about.
xs_domains() {
  for p in /local/domain /vm /local/domain/0/backend/console /libxl; do
    echo "$p: $(xenstore-list "$p" 2>/dev/null | sort | tr '\n' ' ')"
  done
}
before=$(xs_domains)
name=arm32
# panic=1: a guest that panics reboots, and on_reboot="destroy" ends it at once.
cfg=$(guest_cfg "$name" rxl-fdt arch=arm32 vcpus=1 memory=128 extra_args="quiet panic=1" 'cpus="1"')
show_file cfg "$cfg"
# While the guest runs: Xen's view of its vCPU (hard / soft affinity in the last two
# columns), read by Debian's xl.
rm -f /tmp/$name.vcpus
( i=0; while [ $i -lt 300 ]; do
    xl vcpu-list "$name" > /tmp/$name.vcpus.tmp 2>/dev/null && mv /tmp/$name.vcpus.tmp /tmp/$name.vcpus && break
    i=$((i + 1)); sleep 0.2
  done ) &
t0=$(uptime_cs)
echo "----- console of $name (rxl create -c) -----"
timeout 200 rxl create -c --dtb-out /tmp/$name.dtb "$cfg"
echo "$?" > /tmp/$name.rc
echo
echo "----- end of console of $name -----"
t1=$(uptime_cs)
log "rxl create -c to the end of the console: $(( (t1 - t0) * 10 )) ms"
if [ "$(cat /tmp/$name.rc)" != 0 ]; then
  # What Xen and xenstore say about a guest that did not end, for the CI log.
  xl list; xl vcpu-list
  xl dmesg | tail -n 30
  xenstore-ls -f "/local/domain/$(xl domid "$name" 2>/dev/null)" 2>/dev/null | head -n 40
  xl destroy "$name" 2>/dev/null
fi
expect_eq "rxl create -c exit status" "$(cat /tmp/$name.rc)" 0
wait
[ -s /tmp/$name.vcpus ] && show_file vcpu-list /tmp/$name.vcpus
expect_eq "vCPU 0's hard affinity (cpus=\"1\") in xl vcpu-list" \
  "$(awk -v n="$name" '$1 == n && $3 == 0 { print $(NF - 2) }' /tmp/$name.vcpus 2>/dev/null)" 1
run rxl check-dtb /tmp/$name.dtb
wait_for 30 "domain $name to be gone" sh -c "! xl domid $name >/dev/null 2>&1"
pass "domain $name is gone after its poweroff (rxl's monitor destroyed it)"
log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" grep -q RXEN-GUEST-END "$log"
check "the guest ran a 32-bit kernel (uname -m armv7l)" \
  grep -Eq 'RXEN-GUEST-HELLO uname=Linux [^ ]+-armmp-lpae armv7l cpus=1 ' "$log"
check "its vCPU online and the guest's GIC is the host's ($host_gic)" \
  grep -q "=== RXEN-GUEST-CPUS online=0 gic=$host_gic ===" "$log"
check "the guest script ended with rc=0" grep -q '=== RXEN-GUEST-END script=rxl-fdt rc=0 ===' "$log"
# The DTB the guest received (/sys/firmware/fdt) against the one rxl wrote: only the
# rng-seed (3 header words + 32 value words) may differ, turned into FDT_NOPs (read
# little-endian as 04000000) by Linux. Compared as strings (awk would read some words
# as numbers).
tr -d '\r' < "$log" | sed -n 's/^FDTW //p' | tr -s ' ' '\n' | grep . > /tmp/$name.guest.words
od -An -v -tx4 /tmp/$name.dtb | tr -s ' ' '\n' | grep . > /tmp/$name.ours.words
verdict=$(awk 'NR == FNR { g[FNR] = $1 ""; next }
  g[FNR] != $1 "" { n++; if (g[FNR] != "04000000") bad++ }
  END { printf "words=%d differ=%d non-nop=%d", FNR, n, bad + 0 }' /tmp/$name.guest.words /tmp/$name.ours.words)
log "guest DTB vs rxl's: $verdict"
expect_eq "the guest's DTB is rxl's but for the NOP'd rng-seed" \
  "$(echo "$verdict" | sed 's/^words=[0-9]* //')" "differ=35 non-nop=0"
expect_eq "DTB size in words (guest vs rxl)" "$(wc -l < /tmp/$name.guest.words)" "$(wc -l < /tmp/$name.ours.words)"
after=$(xs_domains)
expect_eq "xenstore holds the same domains, /vm entries and console backends as before" "$after" "$before"
