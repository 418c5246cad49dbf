# rxl-more: (0) rxl debug-keys / dmesg [-c] against xl dmesg; (1) vuart = "sbsa_uart":
# the guest sees ttyAMA0 (Xen's vpl011, wired by rxl's vuart_op and xenstore nodes),
# and its DTB passes check-dtb; (2) a guest with more than 3 GiB: RAM in both banks,
# all of it visible in the guest; (3) rxl uptime against xl uptime, rxl sysrq, rxl
# mem-set/mem-max (the guest balloons down and up), rxl shutdown -w; (4)
# on_reboot=restart. Needs a machine with enough RAM (all.list runs
# it with @mem=5120).
# timeout: 300

start_debian_xenstored
start_xenconsoled

# ---------------------------------------------------------------- rxl dmesg / debug-keys
# Xen's 'h' key lists the debug keys on its console ring; nothing else writes to the
# ring while no guest runs, so rxl's and xl's reads of it must be equal.
run rxl debug-keys h
rxl dmesg > /tmp/rxl-dmesg.txt || fail "rxl dmesg"
xl dmesg > /tmp/xl-dmesg.txt || fail "xl dmesg"
log "rxl dmesg: $(wc -c < /tmp/rxl-dmesg.txt) bytes, xl dmesg: $(wc -c < /tmp/xl-dmesg.txt) bytes"
tail -n 3 /tmp/rxl-dmesg.txt | sed 's/^/rxl-dmesg| /'
check "rxl dmesg shows what debug key 'h' printed" \
  grep -q "'h' pressed -> showing installed handlers" /tmp/rxl-dmesg.txt
check "rxl dmesg equals xl dmesg" cmp /tmp/rxl-dmesg.txt /tmp/xl-dmesg.txt
rxl dmesg -c > /tmp/rxl-dmesg-c.txt || fail "rxl dmesg -c"
check "rxl dmesg -c printed the ring" cmp /tmp/rxl-dmesg.txt /tmp/rxl-dmesg-c.txt
check "rxl dmesg -c cleared the ring (xl dmesg no longer shows the 'h' output)" \
  sh -c "! xl dmesg | grep -q 'showing installed handlers'"

name=rxlvu
cfg=$(guest_cfg "$name" rxl-fdt vcpus=1 memory=128 extra_args=quiet 'vuart="sbsa_uart"')
run rxl create --dtb-out /tmp/$name.dtb "$cfg"
run rxl check-dtb /tmp/$name.dtb
xenstore-ls -fp "/local/domain/$(rxl domid $name)/vuart" | sed 's/^/vuart-xs| /'
wait_domain_gone "$name" 150
log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" grep -q RXEN-GUEST-END "$log"
grep -v '^FDTW ' "$log" | tr -d '\r' | sed "s/^/$name| /"
check "the guest sees the vpl011 as ttyAMA0" grep -q 'RXEN-GUEST-TTYS .*ttyAMA0' "$log"

name=rxlbig
mem=3328
cfg=$(guest_cfg "$name" default vcpus=2 memory=$mem)
run rxl create -p "$cfg"
xl list | sed 's/^/xl-list| /'
rxl list | sed 's/^/rxl-list| /'
run rxl unpause "$name"
wait_domain_gone "$name" 200
log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" grep -q RXEN-GUEST-END "$log"
show_file "$name" "$log"
kb=$(tr -d '\r' < "$log" | sed -n 's/.*memtotal_kb=\([0-9]*\).*/\1/p')
log "guest MemTotal ${kb} kB of ${mem} MiB"
# More than bank 0's 3 GiB is visible, so bank 1 is in use.
check "guest sees more than 3 GiB (${kb} kB)" [ "${kb:-0}" -gt 3145728 ]

# ---------------------------------------------------------------- rxl shutdown -w
name=rxlsd
cfg=$(guest_cfg "$name" rxl-wait vcpus=1 maxvcpus=2 memory=256 extra_args=cma=0)
run rxl create "$cfg"
id=$(rxl domid "$name") || fail "rxl domid $name"
uuid=$(xenstore-read "/local/domain/$id/vm"); uuid=${uuid#/vm/}
log=$(guest_console_log "$name")
wait_for 150 "guest $name to wait for its shutdown" grep -q RXEN-GUEST-WAITING "$log"
# rxl uptime: the same domains, ids and format as xl uptime (the seconds may tick
# between the two calls, so the names and ids are compared, the rest by shape).
rxl uptime > /tmp/rxl-uptime.txt || fail "rxl uptime"
xl uptime > /tmp/xl-uptime.txt || fail "xl uptime"
sed 's/^/rxl-uptime| /' /tmp/rxl-uptime.txt
sed 's/^/xl-uptime| /' /tmp/xl-uptime.txt
awk '{print $1, $2}' /tmp/rxl-uptime.txt > /tmp/rxl-uptime.ids
awk '{print $1, $2}' /tmp/xl-uptime.txt > /tmp/xl-uptime.ids
check "rxl uptime lists the domains xl uptime lists" cmp /tmp/rxl-uptime.ids /tmp/xl-uptime.ids
check "rxl uptime's $name line has xl's shape" \
  grep -Eq "^$name +$id +[ 0-9]?[0-9]:[0-5][0-9]:[0-5][0-9]\$" /tmp/rxl-uptime.txt
rxl uptime -s "$name" | sed 's/^/rxl-uptime-s| /'
check "rxl uptime -s has xl's short shape" \
  sh -c "rxl uptime -s $name | grep -Eq '^ [0-9]{2}:[0-9]{2}:[0-9]{2} up +[0-9]?[0-9]:[0-5][0-9], $name \($id\)\$'"
# rxl sysrq: the guest kernel's xenbus handler runs the key ('h' prints its help).
run rxl sysrq "$name" h
wait_for 30 "the guest's sysrq help" grep -q 'sysrq: HELP' "$log"
pass "rxl sysrq reached the guest's kernel"
check "rxl sysrq refuses more than one letter" sh -c "! rxl sysrq $name hh 2>/dev/null"
# rxl vcpu-set: created with 1 of 2 vCPUs online; the guest's kernel follows
# cpu/N/availability (its script plays the udev rule that brings a CPU up), and Xen's
# count of online vCPUs (xl list's VCPUs) follows the guest.
vcpus_of() { xl list "$1" | awk 'NR == 2 { print $4 }'; }
vcpus_are() { [ "$(vcpus_of "$1")" = "$2" ]; }
wait_for 60 "xl list to show 1 vCPU of $name" vcpus_are "$name" 1
pass "created with 1 of 2 vCPUs online"
run rxl vcpu-set "$name" 2
expect_eq "rxl vcpu-set 2: cpu/1/availability" "$(xenstore-read "/local/domain/$id/cpu/1/availability")" online
wait_for 60 "the guest to bring vCPU 1 up" grep -q 'RXEN-GUEST-CPUS online=0-1' "$log"
wait_for 30 "xl list to show 2 vCPUs of $name" vcpus_are "$name" 2
pass "the guest brought vCPU 1 up and Xen counts 2 online vCPUs"
rxl vcpu-list "$name" | sed 's/^/rxl-vcpu-list| /'
check "rxl vcpu-set above maxvcpus is refused" sh -c "! rxl vcpu-set $name 3 2>/dev/null"
check "rxl vcpu-set 0 is refused" sh -c "! rxl vcpu-set $name 0 2>/dev/null"
run rxl vcpu-set "$name" 1
wait_for 60 "xl list to show 1 vCPU of $name" vcpus_are "$name" 1
# The guest's script reports within half a second; its first report, at boot, was
# already "online=0", so look after the "0-1" one.
reported_down() { sed -n '/RXEN-GUEST-CPUS online=0-1/,$p' "$log" | grep -q 'RXEN-GUEST-CPUS online=0 '; }
wait_for 30 "the guest to report vCPU 1 down" reported_down
pass "the guest took vCPU 1 down and Xen counts 1 online vCPU"
# rxl rename: xl sees the new name, /vm/<uuid>/name follows, a taken name is refused.
run rxl rename "$name" "$name-renamed"
expect_eq "rxl rename: xl domid of the new name" "$(xl domid "$name-renamed")" "$id"
expect_eq "rxl rename: /vm/<uuid>/name" "$(xenstore-read "/vm/$uuid/name")" "$name-renamed"
check "rxl rename to a name in use is refused" sh -c "! rxl rename $name-renamed Domain-0 2>/dev/null"
expect_eq "the refused rename left the name" "$(xenstore-read "/local/domain/$id/name")" "$name-renamed"
run rxl rename "$name-renamed" "$name"
rxl vm-list > /tmp/rxl-vm-list.txt || fail "rxl vm-list"
xl vm-list > /tmp/xl-vm-list.txt || fail "xl vm-list"
sed 's/^/rxl-vm-list| /' /tmp/rxl-vm-list.txt
check "rxl vm-list equals xl vm-list" cmp /tmp/rxl-vm-list.txt /tmp/xl-vm-list.txt
# rxl list -v: xl's header; per row the name, id, uuid, reason code and security
# label as xl's (memory, vCPUs, state and CPU time may move between the two calls).
rxl list -v > /tmp/rxl-list-v.txt || fail "rxl list -v"
xl list -v > /tmp/xl-list-v.txt || fail "xl list -v"
sed 's/^/rxl-list-v| /' /tmp/rxl-list-v.txt
expect_eq "rxl list -v's header" "$(head -n 1 /tmp/rxl-list-v.txt)" "$(head -n 1 /tmp/xl-list-v.txt)"
awk 'NR > 1 { print $1, $2, $7, $8, $9 }' /tmp/rxl-list-v.txt > /tmp/rxl-list-v.cols
awk 'NR > 1 { print $1, $2, $7, $8, $9 }' /tmp/xl-list-v.txt > /tmp/xl-list-v.cols
check "rxl list -v's names, ids, uuids, reasons and labels equal xl's" cmp /tmp/rxl-list-v.cols /tmp/xl-list-v.cols
# rxl mem-set / mem-max: the guest's balloon driver follows memory/target; xl list's
# Mem column is Xen's count of the domain's pages. (cma=0: the balloon's allocations
# cannot use the 64 MiB the Debian kernel keeps for CMA, and back off for up to 32 s
# when they fail.) Xen gives pages back slowly under TCG (2-20 ms each), so the steps
# are small. Debian's xl 4.17 cannot do this on these guests: its mem-set
# aborts in libxl_defbool_val (acpi of the stored config unset).
mem_of() { xl list "$1" | awk 'NR == 2 { print $3 }'; }
# balloon_until NAME -le|-ge MIB SECONDS -- until xl list shows NAME at MIB or below/above.
balloon_until() {
  _bu_end=$(( $(uptime_cs) + $4 * 100 ))
  until test "$(mem_of "$1")" "$2" "$3" || [ "$(uptime_cs)" -gt "$_bu_end" ]; do sleep 1; done
  log "$1 has $(mem_of "$1") MiB"
  test "$(mem_of "$1")" "$2" "$3"
}
log "$name has $(mem_of "$name") MiB"
run rxl mem-set "$name" 248m
expect_eq "rxl mem-set: memory/target" "$(xenstore-read "/local/domain/$id/memory/target")" 253952
expect_eq "rxl mem-set: /vm/<uuid>/memory" "$(xenstore-read "/vm/$uuid/memory")" 248
check "the guest ballooned down to 248 MiB" balloon_until "$name" -le 249 120
check "rxl mem-set above memory/static-max is refused" sh -c "! rxl mem-set $name 512m"
expect_eq "the refused mem-set left memory/target" "$(xenstore-read "/local/domain/$id/memory/target")" 253952
check "rxl mem-max below the target is refused" sh -c "! rxl mem-max $name 128m"
run rxl mem-max "$name" 512m
expect_eq "rxl mem-max: memory/static-max" "$(xenstore-read "/local/domain/$id/memory/static-max")" 524288
run rxl mem-set "$name" 254m
check "the guest ballooned up to 254 MiB" balloon_until "$name" -ge 253 120
# Dom0 too: Xen built it, so it has no memory nodes until rxl fills them in from
# Xen's count and limit (as libxl does); its balloon driver then follows the target.
# What shows it is the balloon's own count (sysfs): Xen keeps the pages of a
# direct-mapped (1:1) ARM dom0 allocated to it when it balloons them out
# (guest_remove_page keeps their allocation reference), so xl list's Mem for dom0
# does not change. Debian's xl mem-set 0 aborts as it does for guests.
bal=/sys/devices/system/xen_memory/xen_memory0
balloon_mib() { echo $(( $(cat $bal/info/current_kb) / 1024 )); }
# dom0_balloon_until -le|-ge MIB SECONDS -- until dom0's balloon count is there.
dom0_balloon_until() {
  _db_end=$(( $(uptime_cs) + $3 * 100 ))
  until test "$(balloon_mib)" "$1" "$2" || [ "$(uptime_cs)" -gt "$_db_end" ]; do sleep 1; done
  log "Domain-0's balloon counts $(balloon_mib) MiB (Xen: $(mem_of Domain-0) MiB)"
  test "$(balloon_mib)" "$1" "$2"
}
cur=$(balloon_mib)
log "Domain-0: Xen counts $(mem_of Domain-0) MiB, its balloon $cur MiB"
run rxl mem-set 0 $((cur - 16))m
check "dom0's memory/static-max came from Xen" xenstore-exists /local/domain/0/memory/static-max
expect_eq "rxl mem-set 0: dom0's memory/target" "$(xenstore-read /local/domain/0/memory/target)" $(( (cur - 16) * 1024 ))
check "dom0's balloon went down by 16 MiB" dom0_balloon_until -le $((cur - 16)) 60
run rxl mem-set 0 "${cur}m"
check "dom0's balloon came back up" dom0_balloon_until -ge "$cur" 60
run rxl shutdown -w "$name"
check "rxl shutdown -w returned with $name gone" sh -c "! xl domid $name >/dev/null 2>&1"
check "the guest was asked to power off" grep -q RXEN-GUEST-POWEROFF-REQUESTED "$log"
wait_for 10 "xenstore nodes of $id to go" sh -c "! xenstore-exists /local/domain/$id && ! xenstore-exists /vm/$uuid && ! xenstore-exists /libxl/$id"
pass "no xenstore nodes of domain $id left after rxl shutdown"

# ---------------------------------------------------------------- on_reboot=restart
# The guest reboots; the monitor restarts it from the config file, which by then
# names the default script (it powers off: on_poweroff=destroy ends it).
name=rxlrb
cfg=$(guest_cfg "$name" rxl-reboot vcpus=1 memory=128 'on_reboot="restart"')
run rxl create "$cfg"
id1=$(rxl domid "$name") || fail "rxl domid $name"
sed -i 's/rxen.guest=rxl-reboot/rxen.guest=default/' "$cfg"
wait_for 150 "domain $name to be restarted with a new id" \
  sh -c "id=\$(xl domid $name 2>/dev/null) && [ \"\$id\" != $id1 ]"
id2=$(xl domid "$name")
pass "domain $name rebooted and was restarted by the monitor (id $id1 -> $id2)"
wait_domain_gone "$name" 150
pass "the restarted $name powered off and was destroyed"
log=$(guest_console_log "$name")
show_file "$name" "$log"
show_file "monitor-$name" "/var/log/xen/rxl-$name.log"
check "no xenstore nodes of $id1 or $id2 left" \
  sh -c "! xenstore-exists /local/domain/$id1 && ! xenstore-exists /local/domain/$id2"
