# console-restart: rxconsoled killed with SIGKILL and started again while a guest is
# writing numbered lines: every line reaches the log (output the guest already put in
# its ring is released only after it was logged).
# timeout: 200

start_debian_xenstored
start_rxconsoled

name=console-restart
lines=200
run xl create "$(guest_cfg "$name" console-lines extra_args="rxen.lines=$lines rxen.pause=0.03")"
log=$RXCONSOLED_LOG_DIR/guest-$name.log
if ! (wait_for 120 "the guest's 20th line" grep -q "RXEN-CONSOLE-LINE 20/$lines" "$log"); then
  show_file rxconsoled /tmp/rxconsoled.log
  show_file "$name" "$log"
  fail "no 20th line of $name in $log"
fi
kill -9 "$(cat /var/run/rxconsoled.pid)"
before=$(grep -c "RXEN-CONSOLE-LINE" "$log")
log "killed rxconsoled (SIGKILL) after $before lines"
sleep 2
grep -q "RXEN-CONSOLE-LINE $lines/$lines" "$log" && fail "the guest finished before the restart; nothing was tested"
start_rxconsoled
pass "rxconsoled restarted with the guest running ($before of $lines lines logged before the kill)"
wait_domain_gone "$name" 150
wait_for 10 "the end marker" grep -q 'RXEN-GUEST-END' "$log"
missing=0; i=1
while [ "$i" -le "$lines" ]; do
  grep -q "RXEN-CONSOLE-LINE $i/$lines" "$log" || { missing=$((missing + 1)); log "missing line $i"; }
  i=$((i + 1))
done
expect_eq "lines lost across the kill and restart" "$missing" 0
log "lines in the log: $(grep -c "RXEN-CONSOLE-LINE" "$log") (a chunk logged but not yet released at the kill may repeat)"
check "guest script ended with rc=0" grep -q "=== RXEN-GUEST-END script=console-lines rc=0 ===" "$log"
