# rxl-create: `rxl create` builds real guests on real Xen with Debian's xenstored and
# xenconsoled as the backends. (1) 1 vCPU / 128 MiB guest boots to its marker (its
# hvc0 output reaching xenconsoled's log proves the console ring, event channel and
# xenstore wiring), xl and rxl agree on it, the monitor destroys it on poweroff and no
# xenstore node of it is left. (2) 4 vCPUs: all online in the guest, the guest's GIC is
# the host's, and the DTB the guest received equals the one rxl wrote (but for
# rng-seed, which Linux turns into NOPs). (3) `rxl create -p` + `rxl destroy`.
# timeout: 300

start_debian_xenstored
start_xenconsoled
host_gic=GICv2
grep -q GICv3 /proc/interrupts && host_gic=GICv3
log "host GIC: $host_gic"

# no_nodes ID UUID -- no xenstore node of the domain is left anywhere.
no_nodes() {
  for p in "/local/domain/$1" "/libxl/$1" "/vm/$2" "/local/domain/0/backend/console/$1"; do
    if xenstore-exists "$p" 2>/dev/null; then echo "left behind: $p"; return 1; fi
  done
}

# list_row TOOL NAME -- "name id mem vcpus" of NAME in TOOL's `list`.
list_row() { "$1" list | awk -v n="$2" '$1 == n { print $1, $2, $3, $4 }'; }

# ---------------------------------------------------------------- 1 vCPU, 128 MiB
name=rxl1
cfg=$(guest_cfg "$name" default vcpus=1 memory=128)
t0=$(uptime_cs)
run rxl -v create "$cfg"
t1=$(uptime_cs)
log "rxl create took $(( (t1 - t0) * 10 )) ms"
id=$(rxl domid "$name") || fail "rxl domid $name"
expect_eq "rxl domid equals xl domid" "$id" "$(xl domid "$name")"
expect_eq "rxl domname $id" "$(rxl domname "$id")" "$name"
uuid=$(xenstore-read "/local/domain/$id/vm"); uuid=${uuid#/vm/}
xenstore-ls -fp "/local/domain/$id" | sed 's/^/rxl1-xs| /'
xl list | sed 's/^/xl-list| /'
rxl list | sed 's/^/rxl-list| /'
expect_eq "xl list and rxl list agree (name id mem vcpus)" "$(list_row rxl "$name")" "$(list_row xl "$name")"
wait_domain_gone "$name" 150
pass "domain $name is gone after its poweroff (rxl's monitor destroyed it)"
log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" test -s "$log"
show_file "$name" "$log"
check "guest boot marker in xenconsoled's log" grep -q '=== RXEN-GUEST-BOOT script=default' "$log"
check "guest saw 1 vCPU and ~128 MiB" grep -Eq 'RXEN-GUEST-HELLO .* cpus=1 memtotal_kb=[0-9]{5,6} ' "$log"
check "guest script ended with rc=0" grep -q '=== RXEN-GUEST-END script=default rc=0 ===' "$log"
wait_for 10 "xenstore nodes of domain $id to go" no_nodes "$id" "$uuid"
check "no xenstore nodes of domain $id left" no_nodes "$id" "$uuid"
check "xl list does not show $name" sh -c "! xl list | grep -q '^$name '"
[ -f /var/log/xen/rxl-$name.log ] && show_file "monitor-$name" /var/log/xen/rxl-$name.log

# ---------------------------------------------------------------- 4 vCPUs, DTB
name=rxl4
cfg=$(guest_cfg "$name" rxl-fdt vcpus=4 memory=128 extra_args=quiet)
run rxl create -p --dtb-out /tmp/$name.dtb "$cfg"
run rxl check-dtb /tmp/$name.dtb
xl list | sed 's/^/xl-list| /'
rxl list | sed 's/^/rxl-list| /'
expect_eq "xl list and rxl list agree on the paused guest" "$(list_row rxl "$name")" "$(list_row xl "$name")"
check "the guest is paused" sh -c "xl list $name | awk 'NR == 2 { exit !(\$5 ~ /p/) }'"
run rxl unpause "$name"
wait_domain_gone "$name" 150
pass "domain $name is gone after its poweroff"
log=$(guest_console_log "$name")
wait_for 10 "xenconsoled's log $log" grep -q RXEN-GUEST-END "$log"
grep -v '^FDTW ' "$log" | tr -d '\r' | sed "s/^/$name| /"
check "guest saw 4 CPUs" grep -Eq 'RXEN-GUEST-HELLO .* cpus=4 ' "$log"
check "all 4 vCPUs online and the guest's GIC is the host's ($host_gic)" \
  grep -q "=== RXEN-GUEST-CPUS online=0-3 gic=$host_gic ===" "$log"
tr -d '\r' < "$log" | sed -n 's/^FDTW //p' | tr -s ' ' '\n' | grep . > /tmp/guest.words
od -An -v -tx4 /tmp/$name.dtb | tr -s ' ' '\n' | grep . > /tmp/ours.words
expect_eq "DTB size in words (guest vs rxl)" "$(wc -l < /tmp/guest.words)" "$(wc -l < /tmp/ours.words)"
# Linux replaces /chosen/rng-seed (3 header words + 32 value words) with FDT_NOP
# tokens (0x00000004, read little-endian as 04000000); nothing else may differ.
# (Compared as strings: awk would read words like 564e4558 as numbers.)
verdict=$(awk 'NR == FNR { g[FNR] = $1 ""; next }
  g[FNR] != $1 "" { n++; if (g[FNR] != "04000000") bad++ }
  END { printf "differ=%d non-nop=%d", n, bad + 0 }' /tmp/guest.words /tmp/ours.words)
log "guest DTB vs rxl's: $verdict"
awk 'NR == FNR { g[FNR] = $1 ""; next } g[FNR] != $1 "" && g[FNR] != "04000000" { printf "dtb-diff| word %d: guest %s rxl %s\n", FNR - 1, g[FNR], $1 }' \
  /tmp/guest.words /tmp/ours.words
expect_eq "the guest's DTB is rxl's but for the NOP'd rng-seed" "$verdict" "differ=35 non-nop=0"

# ---------------------------------------------------------------- create -p, destroy
name=rxld
cfg=$(guest_cfg "$name" default vcpus=2 memory=64)
run rxl create -p "$cfg"
id=$(rxl domid "$name") || fail "rxl domid $name"
uuid=$(xenstore-read "/local/domain/$id/vm"); uuid=${uuid#/vm/}
run rxl destroy "$name"
wait_domain_gone "$name" 30
pass "rxl destroy removed domain $name"
check "no xenstore nodes of domain $id left after rxl destroy" no_nodes "$id" "$uuid"
xenstore-ls -fp /local/domain | sed 's/^/after| /'
