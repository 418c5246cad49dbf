# Floods the console for rxen.flood=S seconds (default 10) as fast as the guest can.
secs=10
for arg in $(cat /proc/cmdline); do
  case "$arg" in rxen.flood=*) secs=${arg#rxen.flood=} ;; esac
done
echo "=== RXEN-CONSOLE-FLOOD-START secs=$secs ==="
timeout "$secs" sh -c 'while :; do echo "FLOOD 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"; done'
echo "=== RXEN-CONSOLE-FLOOD-END ==="
