# hostile-guest: a hostile guest harms only itself. On rxen's own stack (rxenstored,
# rxconsoled, rxblkback, rxnetback), an honest guest keeps writing and reading back a
# checked disk pattern, pinging dom0 over its NIC and printing a console line per
# round while a hostile guest runs
# rxen-hostile: xenstore attacks (other domains' nodes, privileged and malformed
# messages, every quota, a request flood, a watch storm, watch events about nodes it
# cannot read), blkif attacks through its own frontend (bad segments, grants never
# given, ranges past the end, bad operations, requests rewritten after notification,
# a producer index far ahead), netif attacks through its own frontend (slot counts,
# sizes, offsets, extra-info types and chains, grants never given, rx buffers never
# consumed, a producer index far ahead) and a console flood. Afterwards: every attack ended as
# expected (HOSTILE-OK lines, checked by name), the honest guest's rounds went on
# during the attack and its data is intact in the backing file, nothing the hostile
# guest tried to write exists, every bad packet was counted and only the hostile NIC
# was disconnected, the daemons still run and their VmRSS grew by at most
# RSS_BOUND_KB each.
# timeout: 600

RSS_BOUND_KB=8192

# A failed check shows the end of every daemon's log, so that a CI failure explains itself.
fail() {
  echo "FAIL: $*"
  for f in /var/log/rxenstored.log /tmp/rxblkback.log /tmp/rxconsoled.log /tmp/rxnetback.log; do
    [ -f "$f" ] || continue
    echo "----- last 60 lines of $f -----"
    tail -n 60 "$f" | sed 's/^/  | /'
  done
  exit 1
}
NET_ATTACKS="net-handshake net-valid net-too-many-slots net-sizes-dont-add-up
  net-offset-past-page net-unknown-extra net-extra-chain net-never-granted
  net-still-served net-unconsumed-rx net-producer-far-ahead net-closed"
ATTACKS="$NET_ATTACKS xs-watch-burst xs-read-dom0 xs-read-other xs-write-other xs-write-dom0 xs-privileged-ops
  xs-oversized xs-bad-messages xs-quota-nodes xs-quota-node-size xs-quota-watches
  xs-quota-transactions xs-flood xs-watch-storm xs-watch-leak xs-still-served
  blk-handshake blk-valid blk-inverted-segment blk-segment-beyond-page
  blk-too-many-segments blk-no-segments blk-never-granted blk-read-only-grant
  blk-past-end blk-bad-operation blk-unconsumed-responses blk-rewrite-after-notify
  blk-producer-far-ahead blk-reconnect"

pidof xenstored >/dev/null 2>&1 && fail "Debian's xenstored is running; hostile-guest needs a boot of its own"
# A small output queue per connection (default 1024 messages), so that the watch
# burst overflows it for a few hundred events instead of a thousand: the hostile
# guest's kernel drains its ring slowly under emulation.
XS_MAX_QUEUED=256
BURST_NODES=16
start_rxenstored --max-queued=$XS_MAX_QUEUED
start_rxconsoled
mkdir -p /var/lib/rxen
rxblkback >> /tmp/rxblkback.log 2>&1 &
echo $! > /var/run/rxblkback.pid
sleep 0.5
kill -0 "$(cat /var/run/rxblkback.pid)" 2>/dev/null || { cat /tmp/rxblkback.log; fail "rxblkback exited at start"; }
# The NICs: bridge xenbr0 (169.254.1.1) in dom0, rxnetback for both guests' vifs.
load_module xen-gntdev tun bridge || fail "loading xen-gntdev, tun, bridge"
make_bridges 02:52:58:00:00:1 xenbr0:169.254.1.1
rxnetback >> /tmp/rxnetback.log 2>&1 &
echo $! > /var/run/rxnetback.pid
sleep 0.5
kill -0 "$(cat /var/run/rxnetback.pid)" 2>/dev/null || { cat /tmp/rxnetback.log; fail "rxnetback exited at start"; }
xs_pid=$(pidof rxenstored)
cons_pid=$(cat /var/run/rxconsoled.pid)
blk_pid=$(cat /var/run/rxblkback.pid)
net_pid=$(cat /var/run/rxnetback.pid)
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

hdisk=/var/lib/rxen/honest-disk.img
xdisk=/var/lib/rxen/hostile-disk.img
run dd if=/dev/zero of="$hdisk" bs=1M count=16
run dd if=/dev/zero of="$xdisk" bs=1M count=8
hlog=$RXCONSOLED_LOG_DIR/guest-honest.log
xlog=$RXCONSOLED_LOG_DIR/guest-hostile.log
rounds() { cat "$hlog" 2>/dev/null | grep -ac 'HONEST-ROUND '; }
pings() { cat "$hlog" 2>/dev/null | grep -ac 'HONEST-ROUND .* net=ok'; }

cfg=$(guest_cfg honest honest "disk = [ 'format=raw, vdev=xvda, access=rw, target=$hdisk' ]" \
  "vif = [ 'bridge=xenbr0,mac=00:16:3e:48:4f:01' ]")
run rxl create "$cfg"
hid=$(rxl domid honest) || fail "no domid for the honest guest"
wait_for 200 "the honest guest's first disk round" grep -q 'HONEST-ROUND 0 ' "$hlog"
rss0_xs=$(rss "$xs_pid") rss0_cons=$(rss "$cons_pid") rss0_blk=$(rss "$blk_pid") rss0_net=$(rss "$net_pid")
log "VmRSS before the attack (kB): rxenstored $rss0_xs, rxconsoled $rss0_cons, rxblkback $rss0_blk, rxnetback $rss0_net"

# dom0 keeps writing nodes that the hostile guest may watch but must never hear about.
( i=0; while :; do
    xenstore-write "/local/domain/$hid/data/secret" "s$i" /local/domain/0/secret "s$i" 2>/dev/null
    i=$((i + 1)); sleep 0.3
  done ) &
writer=$!

# While the attack runs: the daemons' VmRSS and CPU time and the hostile guest's last
# attack line every 5 s (shows where a stall started, if one ever does).
( while :; do
    sleep 5
    log "monitor: load $(cut -d' ' -f1-3 /proc/loadavg); VmRSS kB rxenstored $(rss "$xs_pid") rxconsoled $(rss "$cons_pid") rxblkback $(rss "$blk_pid") rxnetback $(rss "$net_pid"); utime+stime ticks rxenstored $(awk '{ print $14 + $15 }' "/proc/$xs_pid/stat"); hostile: $(grep -a 'HOSTILE' "$xlog" 2>/dev/null | grep -av 'hostile flood' | tail -n 1 | cut -c1-160)"
  done ) &
monitor=$!

cfg=$(guest_cfg hostile hostile "disk = [ 'format=raw, vdev=xvda, access=rw, target=$xdisk' ]" \
  "vif = [ 'bridge=xenbr0,mac=00:16:3e:48:4f:02' ]" extra_args="rxen.honest=$hid")
run rxl create "$cfg"
xid=$(rxl domid hostile) || fail "no domid for the hostile guest"
log "honest guest is domain $hid, hostile guest is domain $xid"
# The watch burst: once the hostile guest watches its burst directory (32 watches),
# dom0 writes BURST_NODES nodes there in one xenstore-write (one transaction: its
# commit fires every event at once, more than rxenstored queues for a connection).
( d=/local/domain/$xid/data/hostile
  until xenstore-read "$d/burst-ready" >/dev/null 2>&1; do sleep 0.3; done
  set --
  i=0
  while [ "$i" -lt "$BURST_NODES" ]; do set -- "$@" "$d/burst/n$i" "v$i"; i=$((i + 1)); done
  xenstore-write "$@" && xenstore-write "$d/burst-done" "$BURST_NODES"
) &
burster=$!
wait_for 200 "the hostile guest to start its attacks" grep -q 'RXEN-HOSTILE-START' "$xlog"
r0=$(rounds)
p0=$(pings)
wait_for 400 "the hostile guest to finish" grep -q 'RXEN-GUEST-END script=hostile' "$xlog"
r1=$(rounds)
p1=$(pings)
kill "$writer" "$monitor" "$burster" 2>/dev/null
grep -a 'HOSTILE' "$xlog" | grep -av 'hostile flood' | sed 's/^/hostile| /'
grep -a "rxvbd/$xid/" /tmp/rxblkback.log | sed 's/^/rxblkback| /'
grep -a "rxvif/$xid/\|domid=$xid " /tmp/rxnetback.log | sed 's/^/rxnetback| /'
log "honest rounds: $r0 when the attack started, $r1 when it ended"
[ $((r1 - r0)) -ge 3 ] || fail "the honest guest did only $((r1 - r0)) disk rounds during the attack"
pass "the honest guest did $((r1 - r0)) checked disk rounds during the attack"
[ $((p1 - p0)) -ge 3 ] || fail "the honest guest's pings of dom0 answered during the attack: only $((p1 - p0))"
pass "the honest guest's pings of dom0 answered during the attack: $((p1 - p0))"

# Every attack ended as expected, each one checked by name.
grep -aq 'HOSTILE-FAIL' "$xlog" && fail "an attack did not end as expected (HOSTILE-FAIL above)"
for a in $ATTACKS; do
  grep -aq "HOSTILE-OK $a:" "$xlog" || fail "attack $a has no HOSTILE-OK line"
done
pass "every attack ($(echo $ATTACKS | wc -w) kinds, $(grep -ac 'HOSTILE-OK' "$xlog") checks) ended as expected"
for p in xenstore block net console; do
  grep -aq "HOSTILE-SUMMARY $p ok=[0-9]* fail=0" "$xlog" || fail "no clean summary of the $p attacks"
done
# rxenstored's policy for a domain whose watch events overflow its queue: the events
# over the bound are dropped and logged once per connection, the domain keeps its
# ring (the guest's xs-watch-storm and xs-watch-burst check that every write was
# answered and that xenstore still answers afterwards). The burst overflows the queue
# whatever the timing: BURST_NODES x 32 events fired at once, XS_MAX_QUEUED queued.
drop_lines=$(grep -cE "events over its queue bound are dropped.* domid=$xid( |\$)" /var/log/rxenstored.log)
storm=$(grep -a 'RXEN-HOSTILE-STORM' "$xlog" | sed -n 's/.*events=\([0-9]*\) max=\([0-9]*\).*/\1 of at most \2/p' | tail -n 1)
burst=$(grep -a 'RXEN-HOSTILE-BURST' "$xlog" | sed -n 's/.*events=\([0-9]*\) fired=\([0-9]*\).*/\1 \2/p' | tail -n 1)
log "watch storm: ${storm:-no result} events delivered; burst: delivered/fired ${burst:-no result}; rxenstored's drop lines for domain $xid: $drop_lines"
[ -n "$burst" ] || fail "no watch burst result from the hostile guest"
expect_eq "rxenstored's lines about dropping domain $xid's watch events (once per connection)" "$drop_lines" 1
set -- $burst
[ "$1" -le "$XS_MAX_QUEUED" ] && [ "$1" -lt "$2" ] \
  || fail "burst: $1 of $2 events delivered, more than the queue bound $XS_MAX_QUEUED"
pass "burst: $1 of the $2 events fired were delivered (queue bound $XS_MAX_QUEUED), the rest dropped"
check "rxenstored kept the hostile guest's ring (not ignored as misbehaving)" \
  sh -c "! grep -qE 'misbehaving domain.* domid=$xid( |\$)' /var/log/rxenstored.log"
log "rxenstored found ring work without a notification $(grep -c 'ring work found without a notification' /var/log/rxenstored.log) times (info lines: 1st, 2nd, 4th, ...)"
check "the hostile guest's script ended with status 0" grep -aq '=== RXEN-GUEST-END script=hostile rc=0 ===' "$xlog"
check "the console flood ran" grep -aq 'RXEN-HOSTILE-CONSOLE-FLOOD-END' "$xlog"
log "hostile console log: $(wc -c < "$xlog") bytes"

# dom0's view: nothing the hostile guest tried to write exists; the honest guest's
# nodes are intact; only the hostile disk was dropped as misbehaving.
for n in "/local/domain/$hid/hostile-was-here" /local/domain/0/hostile-was-here \
         /tool/hostile-was-here /local/domain/0/backend/hostile-was-here; do
  check "no node $n" sh -c "! xenstore-read '$n' >/dev/null 2>&1"
done
expect_eq "the honest guest's name" "$(xenstore-read "/local/domain/$hid/name")" honest
expect_eq "the honest disk's backend state" \
  "$(xenstore-read "/local/domain/0/backend/rxvbd/$hid/51712/state")" 4
check "rxblkback dropped the hostile ring" grep -q "rxvbd/$xid/51712: disconnecting a misbehaving frontend" /tmp/rxblkback.log
check "rxblkback dropped no honest ring" sh -c "! grep -q 'rxvbd/$hid/.*misbehaving' /tmp/rxblkback.log"

# rxnetback: every bad packet answered with an error and counted; the rx buffers
# that were never given back made it drop frames (counted) instead of queueing them;
# the runaway producer index disconnected the hostile NIC only.
bad_sent=$(grep -a 'RXEN-HOSTILE-NET-BAD' "$xlog" | sed -n 's/.*packets=\([0-9]*\).*/\1/p' | tail -n 1)
stats=$(grep -a "rxvif/$xid/0: tx " /tmp/rxnetback.log | tail -n 1)
log "hostile NIC's counters: $stats"
tx_errors=$(echo "$stats" | sed -n 's/.*packets [0-9]* bytes, \([0-9]*\) errors.*/\1/p')
rx_dropped=$(echo "$stats" | sed -n 's/.*rx [0-9]* packets [0-9]* bytes, \([0-9]*\) dropped.*/\1/p')
expect_eq "tx errors rxnetback counted on the hostile NIC (bad packets sent: ${bad_sent:-?})" "$tx_errors" "$bad_sent"
[ "${rx_dropped:-0}" -ge 1 ] || fail "rxnetback dropped no frame for the hostile NIC's unconsumed rx ring (rx dropped '${rx_dropped}')"
pass "rxnetback dropped $rx_dropped frames the hostile NIC had no rx buffers for"
check "rxnetback disconnected the hostile NIC over its producer index" \
  grep -q "rxvif/$xid/0: disconnecting a misbehaving frontend: .*producer index" /tmp/rxnetback.log
expect_eq "the honest NIC's backend state" \
  "$(xenstore-read "/local/domain/0/backend/rxvif/$hid/0/state")" 4
check "rxnetback disconnected no honest NIC" sh -c "! grep -q 'rxvif/$hid/.*misbehaving' /tmp/rxnetback.log"

# The honest guest stops on dom0's word; its work is complete and intact.
printf 'RXEN-HONEST-STOP' | dd of="$hdisk" bs=4096 seek=4095 conv=notrunc,fsync 2>/dev/null
wait_for 120 "the honest guest to finish" grep -q 'RXEN-GUEST-END script=honest' "$hlog"
done_line=$(grep -a 'HONEST-DONE' "$hlog" | sed 's/.*HONEST-DONE/HONEST-DONE/')
log "$done_line"
n=$(echo "$done_line" | sed -n 's/.*rounds=\([0-9]*\).*/\1/p')
expect_eq "the honest guest's disk errors" "$(echo "$done_line" | sed -n 's/.* errors=\([0-9]*\).*/\1/p')" 0
expect_eq "the honest guest's unanswered pings" "$(echo "$done_line" | sed -n 's/.*ping_errors=\([0-9]*\).*/\1/p')" 0
seq_ok=$(grep -a 'HONEST-ROUND ' "$hlog" | sed 's/.*HONEST-ROUND \([0-9]*\) .*/\1/' \
  | awk -v n="$n" '$1 != NR - 1 { bad = 1 } END { print (!bad && NR == n) ? "yes" : "no" }')
expect_eq "every one of the honest guest's $n console lines arrived, in order" "$seq_ok" yes
bad=0
k=0
while [ "$k" -lt 16 ] && [ "$k" -lt "$n" ]; do
  last=$(( ((n - 1 - k) / 16) * 16 + k ))
  awk -v r="$last" 'BEGIN { for (i = 0; i < 128; i++) printf "HONEST-r%06d-l%04d-%010d\n", r, i, r * 128 + i }' > /tmp/want
  dd if="$hdisk" bs=4096 skip=$((256 + k)) count=1 2>/dev/null > /tmp/got
  cmp -s /tmp/want /tmp/got || { bad=$((bad + 1)); log "block $((256 + k)) does not hold round $last"; }
  k=$((k + 1))
done
expect_eq "blocks of the honest guest's last rounds in the backing file that differ" "$bad" 0

wait_for 60 "both guests to be gone" sh -c '! rxl domid honest >/dev/null 2>&1 && ! rxl domid hostile >/dev/null 2>&1'
check "no xenstore node of either guest is left" sh -c "! xenstore-ls /local/domain | grep -q 'hostile\|honest'"

# The daemons survived, and their memory stayed bounded.
for p in "$xs_pid" "$cons_pid" "$blk_pid" "$net_pid"; do
  kill -0 "$p" 2>/dev/null || fail "daemon $p ($(cat /proc/$p/comm 2>/dev/null)) is gone"
done
pass "rxenstored, rxconsoled, rxblkback and rxnetback are still running"
check "rxenstored still answers" xenstore-read /local/domain/0/name
rss1_xs=$(rss "$xs_pid") rss1_cons=$(rss "$cons_pid") rss1_blk=$(rss "$blk_pid") rss1_net=$(rss "$net_pid")
log "VmRSS after (kB): rxenstored $rss1_xs, rxconsoled $rss1_cons, rxblkback $rss1_blk, rxnetback $rss1_net (bound: +$RSS_BOUND_KB each)"
for pair in "rxenstored $rss0_xs $rss1_xs" "rxconsoled $rss0_cons $rss1_cons" "rxblkback $rss0_blk $rss1_blk" "rxnetback $rss0_net $rss1_net"; do
  set -- $pair
  [ "$3" -le $(($2 + RSS_BOUND_KB)) ] || fail "$1's VmRSS grew from $2 kB to $3 kB (more than $RSS_BOUND_KB kB)"
  pass "$1 VmRSS $2 kB -> $3 kB (+$(($3 - $2)) kB, bound +$RSS_BOUND_KB kB)"
done
