# rxen.ticks=N lines (default 60) every 0.25 s, each with the guest's uptime when it
# was written: the reader compares it with when the line reached the console log.
# With rxen.wait=1 it first waits (up to 120 s) for a line typed on hvc0, so that
# dom0 can start it when it wants.
ticks=60
wait=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rxen.ticks=*) ticks=${arg#rxen.ticks=} ;;
    rxen.wait=*) wait=${arg#rxen.wait=} ;;
  esac
done
if [ "$wait" = 1 ]; then
  echo "=== RXEN-CONSOLE-WAITING ==="
  timeout 120 head -n 1 < /dev/hvc0 > /dev/null
fi
i=1
while [ "$i" -le "$ticks" ]; do
  read -r up _ < /proc/uptime
  echo "RXEN-TICK $i up=$up"
  sleep 0.25
  i=$((i + 1))
done
