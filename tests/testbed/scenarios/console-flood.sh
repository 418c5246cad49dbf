# console-flood: a guest flooding its console for 10 s does not hold up another
# guest's console: the other guest writes a line every 0.25 s with its own uptime, and
# each line's arrival in rxconsoled's (timestamped) log is compared with when it was
# written. Delay = (arrival - uptime) minus the smallest such difference (the guest's
# clock offset). All lines must arrive, none more than 1 s late.
# timeout: 180

RXCONSOLED_LOG_DIR=/var/log/rxen/console
start_rxconsoled() {
  pidof rxconsoled >/dev/null 2>&1 && return 0
  mkdir -p "$RXCONSOLED_LOG_DIR"
  rxconsoled -i --log=guest --log-dir="$RXCONSOLED_LOG_DIR" --timestamp >> /tmp/rxconsoled.log 2>&1 &
  echo $! > /var/run/rxconsoled.pid
  sleep 0.5
  kill -0 "$(cat /var/run/rxconsoled.pid)" 2>/dev/null || { cat /tmp/rxconsoled.log; fail "rxconsoled exited at start"; }
}

start_debian_xenstored
start_rxconsoled

ticks=console-ticks; flood=console-flooder
run xl create "$(guest_cfg "$ticks" console-ticks extra_args=rxen.ticks=64)"
tlog=$RXCONSOLED_LOG_DIR/guest-$ticks.log
wait_for 60 "the first tick" grep -q 'RXEN-TICK 1 ' "$tlog"
run xl create "$(guest_cfg "$flood" console-flood extra_args=rxen.flood=10)"
flog=$RXCONSOLED_LOG_DIR/guest-$flood.log
wait_domain_gone "$ticks" 120
wait_domain_gone "$flood" 60

grep -q 'RXEN-CONSOLE-FLOOD-START' "$flog" || fail "the flooding guest never started flooding"
check "the flooding guest finished" grep -q 'RXEN-CONSOLE-FLOOD-END' "$flog"
fl=$(grep -c '^\[[^]]*\] FLOOD ' "$flog")
log "flooding guest: $fl lines ($(wc -c < "$flog") bytes) logged in its 10 s"
# Ticks written while the flood ran (by arrival time, between the flood's markers).
tr -d '\r' < "$tlog" | awk -v flog="$flog" '
  function secs(ts,   a) { split(ts, a, /[: ]/); return a[2] * 3600 + a[3] * 60 + a[4] }
  BEGIN {
    while ((getline line < flog) > 0) {
      if (line ~ /RXEN-CONSOLE-FLOOD-START/) fs = secs(substr(line, 2, 23))
      if (line ~ /RXEN-CONSOLE-FLOOD-END/) fe = secs(substr(line, 2, 23))
    }
  }
  / RXEN-TICK [0-9]+ up=/ {
    at = secs(substr($0, 2, 23)); up = $0; sub(/.* up=/, "", up)
    n++; off[n] = at - up; when[n] = at
    if (n == 1 || off[n] < min) min = off[n]
  }
  END {
    for (i = 1; i <= n; i++) {
      d = off[i] - min; if (d > max) max = d
      if (when[i] >= fs && when[i] <= fe) { during++; if (d > dmax) dmax = d }
    }
    printf "ticks=%d during_flood=%d max_delay_ms=%d max_delay_during_flood_ms=%d\n", n, during, max * 1000, dmax * 1000
  }' > /tmp/ticks.txt
cat /tmp/ticks.txt
read -r t_n t_during t_max t_dmax < /tmp/ticks.txt
expect_eq "ticks that reached the log" "$t_n" "ticks=64"
during=${t_during#during_flood=}
[ "$during" -ge 8 ] || fail "only $during ticks were written while the flood ran (want >= 8)"
pass "$during ticks were written while the other guest flooded"
dmax=${t_max#max_delay_ms=}
[ "$dmax" -lt 1000 ] || fail "a tick was delayed ${dmax} ms (limit 1000 ms)"
pass "largest tick delay ${dmax} ms (< 1000 ms)"
kill -0 "$(cat /var/run/rxconsoled.pid)" 2>/dev/null || fail "rxconsoled died"
