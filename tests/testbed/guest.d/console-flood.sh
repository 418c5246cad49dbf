# Floods the console for rxen.flood=S seconds (default 10) as fast as the guest can.
# With rxen.wait=1 it first waits (up to 120 s) for a line typed on hvc0.
secs=10
wait=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rxen.flood=*) secs=${arg#rxen.flood=} ;;
    rxen.wait=*) wait=${arg#rxen.wait=} ;;
  esac
done
if [ "$wait" = 1 ]; then
  echo "=== RXEN-CONSOLE-WAITING ==="
  timeout 120 head -n 1 < /dev/hvc0 > /dev/null
fi
echo "=== RXEN-CONSOLE-FLOOD-START secs=$secs ==="
timeout "$secs" sh -c 'while :; do echo "FLOOD 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"; done'
echo "=== RXEN-CONSOLE-FLOOD-END ==="
