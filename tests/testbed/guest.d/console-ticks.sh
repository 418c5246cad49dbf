# rxen.ticks=N lines (default 60) every 0.25 s, each with the guest's uptime when it
# was written: the reader compares it with when the line reached the console log.
ticks=60
for arg in $(cat /proc/cmdline); do
  case "$arg" in rxen.ticks=*) ticks=${arg#rxen.ticks=} ;; esac
done
i=1
while [ "$i" -le "$ticks" ]; do
  read -r up _ < /proc/uptime
  echo "RXEN-TICK $i up=$up"
  sleep 0.25
  i=$((i + 1))
done
