# Numbered console lines for rxconsoled's scenarios: rxen.lines=N lines (default 200),
# rxen.pause=S seconds of sleep between them (default none). Each line says how many
# there will be, so a reader can tell a lost line from a short run.
lines=200; pause=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rxen.lines=*) lines=${arg#rxen.lines=} ;;
    rxen.pause=*) pause=${arg#rxen.pause=} ;;
  esac
done
i=1
while [ "$i" -le "$lines" ]; do
  echo "RXEN-CONSOLE-LINE $i/$lines"
  [ -n "$pause" ] && sleep "$pause"
  i=$((i + 1))
done
