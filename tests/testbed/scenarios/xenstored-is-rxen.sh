# xenstored-is-rxen: rxenstored is dom0's xenstored (issue 4). It serves dom0's own
# ring (the dom0 kernel's xenbus and /dev/xen/xenbus users), Debian's xen-init-dom0,
# xenconsoled and xl on its socket, and a domU's ring: the guest kernel's own writes
# appear in the store, its console reaches xenconsoled's log, and `xl destroy` fires
# @releaseDomain and leaves none of the guest's nodes behind.
# timeout: 200

start_rxenstored
if pidof xenstored >/dev/null 2>&1; then fail "Debian's xenstored is running"; fi
pass "rxenstored is dom0's xenstored (pid $(pidof rxenstored)); Debian's xenstored is not running"
expect_eq "xen-init-dom0 named dom0 through rxenstored" "$(xenstore-read /local/domain/0/name)" "Domain-0"

# The dom0 kernel's xenbus goes through rxenstored's dom0 ring: a write through
# /dev/xen/xenbus (libxenstore uses a non-socket XENSTORED_PATH as a device) is read
# back over the socket, and the other way round.
run env XENSTORED_PATH=/dev/xen/xenbus xenstore-write /local/domain/0/rxen-test/via-kernel ring
expect_eq "value written through /dev/xen/xenbus, read over the socket" \
  "$(xenstore-read /local/domain/0/rxen-test/via-kernel)" "ring"
run xenstore-write /local/domain/0/rxen-test/via-socket socket
expect_eq "value written over the socket, read through /dev/xen/xenbus" \
  "$(env XENSTORED_PATH=/dev/xen/xenbus xenstore-read /local/domain/0/rxen-test/via-socket)" "socket"
run xenstore-rm /local/domain/0/rxen-test

start_xenconsoled
pass "xenconsoled runs on rxenstored"

# @releaseDomain watcher: xenstore-watch prints the path once when the watch is set
# and once per event.
xenstore-watch @releaseDomain > /tmp/release-watch.log 2>&1 &
watch_pid=$!
wait_for 20 "the @releaseDomain watch to be set" grep -q '^@releaseDomain' /tmp/release-watch.log

name=xsr-guest
cfg=$(guest_cfg "$name" stay-up)
run xl create "$cfg"
domid=$(xl domid "$name") || fail "xl domid $name failed"
pass "domain $name created (domid $domid)"
xl list
xl list | grep -q "^$name " && pass "xl list shows $name"

log=$(guest_console_log "$name")
wait_for 150 "the guest's marker in xenconsoled's log $log" grep -q 'RXEN-GUEST-STAY-UP' "$log"
pass "guest console reaches xenconsoled's log"

# The guest kernel (drivers/xen/manage.c) writes control/feature-* = 1 into nodes
# libxl created empty: those bytes came through the guest's ring.
dom=/local/domain/$domid
wait_for 60 "the guest kernel to write $dom/control/feature-poweroff" \
  sh -c "[ \"\$(xenstore-read $dom/control/feature-poweroff)\" = 1 ]"
pass "guest's own write: $dom/control/feature-poweroff = $(xenstore-read "$dom/control/feature-poweroff")"
xenstore-ls -p "$dom" | sed "s/^/xenstore-ls| /"

before=$(grep -c '^@releaseDomain' /tmp/release-watch.log)
start=$(uptime_cs)
run xl destroy "$name"
wait_domain_gone "$name" 60
wait_for 30 "@releaseDomain to fire" sh -c "[ \$(grep -c '^@releaseDomain' /tmp/release-watch.log) -gt $before ]"
pass "@releaseDomain fired after xl destroy ($(( $(uptime_cs) - start ))0 ms after it began)"
kill "$watch_pid" 2>/dev/null
if xenstore-exists "$dom"; then
  xenstore-ls -p "$dom" | sed "s/^/left| /"
  fail "$dom is still there after the domain was destroyed"
fi
pass "the guest's nodes are gone ($dom does not exist)"
xl list

# A guest that powers itself off: xl's monitor sees the shutdown through
# @releaseDomain (rxenstored fires it on the shutdown it learns of from
# VIRQ_DOM_EXC) and destroys the domain (on_poweroff = "destroy").
name2=xsr-poweroff
cfg2=$(guest_cfg "$name2" default)
run xl create "$cfg2"
domid2=$(xl domid "$name2") || fail "xl domid $name2 failed"
wait_domain_gone "$name2" 150
pass "domain $name2 (domid $domid2) powered off and xl destroyed it"
log2=$(guest_console_log "$name2")
wait_for 10 "xenconsoled's log $log2" grep -q 'RXEN-GUEST-END script=default rc=0' "$log2"
pass "guest $name2 ran its script to the end"
if xenstore-exists "/local/domain/$domid2"; then fail "/local/domain/$domid2 left behind"; fi
pass "no nodes of $name2 left"
pidof rxenstored >/dev/null || fail "rxenstored died"
pass "rxenstored still runs"
show_file rxenstored /var/log/rxenstored.log
