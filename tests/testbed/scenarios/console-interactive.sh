# console-interactive: `rxl console` driven from a script through a pty (rxl's hidden
# --via-pty runs `rxl console` on a fresh pty and relays this script's pipe to it): a
# command typed into the guest's busybox shell comes back with its output, on hvc0
# (the PV console) and on ttyAMA0 (vuart = "sbsa_uart"). Ctrl-] leaves rxl console.
# timeout: 200


start_debian_xenstored
start_rxconsoled

# drive NAME TYPE TTY LOGFILE -- type a command into guest NAME's shell on console TYPE
# through `rxl console` and leave with Ctrl-]; check the command's output came back and
# the guest still runs. Then attach again and type `exit` (the guest powers off, which
# ends that session too).
drive() {
  _name=$1; _type=$2; _tty=$3; _log=$4
  wait_for 60 "$_name's shell on $_tty" grep -q "RXEN-CONSOLE-SHELL-READY tty=$_tty" "$_log"
  sleep 1
  # 6*7 is computed by the guest's shell: 42 in the output proves it ran there.
  (sleep 2; printf 'echo RXEN-ANSWER-$((6*7))-%s\r' "$_tty"; sleep 3; printf '\035') \
    | timeout 60 rxl console --via-pty -t "$_type" "$_name" > "/tmp/$_name.session" 2>&1
  _rc=$?
  show_file "$_name session" "/tmp/$_name.session"
  [ "$_rc" -eq 0 ] || fail "rxl console -t $_type $_name exited with status $_rc"
  domain_exists "$_name" || fail "$_name is gone; the session did not end by Ctrl-]"
  pass "rxl console -t $_type left on Ctrl-] with status 0, the guest still runs"
  check "the command's output came back through rxl console ($_tty)" \
    grep -q "^RXEN-ANSWER-42-$_tty" "/tmp/$_name.session"
  (sleep 2; printf 'exit\r'; sleep 5; printf '\035') \
    | timeout 60 rxl console --via-pty -t "$_type" "$_name" > "/tmp/$_name.session2" 2>&1
  _rc=$?
  show_file "$_name session 2" "/tmp/$_name.session2"
  [ "$_rc" -eq 0 ] || fail "second rxl console -t $_type $_name exited with status $_rc"
  pass "second session: exit typed, rxl console ended with status 0"
}

name=console-shell
cfg=$(guest_cfg "$name" console-shell extra_args=rxen.tty=hvc0)
run xl create "$cfg"
drive "$name" pv hvc0 "$RXCONSOLED_LOG_DIR/guest-$name.log"
wait_domain_gone "$name" 60
check "the shell session is in rxconsoled's log too" grep -q 'RXEN-ANSWER-42-hvc0' "$RXCONSOLED_LOG_DIR/guest-$name.log"

name=console-uart
cfg=$(guest_cfg "$name" console-shell extra_args=rxen.tty=ttyAMA0 'vuart="sbsa_uart"')
run xl create "$cfg"
domid=$(xl domid "$name") || fail "no domid for $name"
wait_for 20 "vuart/0/tty of domain $domid" xenstore-read "/local/domain/$domid/vuart/0/tty"
pass "vuart/0/tty is published: $(xenstore-read "/local/domain/$domid/vuart/0/tty")"
drive "$name" serial ttyAMA0 "$RXCONSOLED_LOG_DIR/guest-$name-vuart0.log"
wait_domain_gone "$name" 60
show_file rxconsoled /tmp/rxconsoled.log
