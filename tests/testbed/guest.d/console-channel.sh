# A channel (secondary PV console, hvc1): waits for /dev/hvc1, says it is ready on
# it, reads one line typed through `rxl console --num 1`, reports it on hvc0 and
# echoes it back on hvc1. Gives up after 90 s.
i=0
while [ ! -e /dev/hvc1 ] && [ "$i" -lt 100 ]; do
  sleep 0.2
  i=$((i + 1))
done
if [ ! -e /dev/hvc1 ]; then
  echo "RXEN-CHANNEL-MISSING: no /dev/hvc1"
  exit 1
fi
exec 3<>/dev/hvc1
# Raw input would leave the carriage return in the line: keep the cooked mode
# (ICRNL) but no echo, so that what comes back is only what this script writes.
stty -echo < /dev/hvc1 2>/dev/null
echo "RXEN-CHANNEL-READY on hvc1" >&3
echo "RXEN-CHANNEL-READY (hvc0)"
line=$(timeout 90 head -n 1 <&3)
if [ -n "$line" ]; then
  echo "RXEN-CHANNEL-GOT [$line]"
  echo "RXEN-CHANNEL-ECHO [$line]" >&3
  sleep 1
else
  echo "RXEN-CHANNEL-NOTHING-READ"
  exit 1
fi
exec 3>&-
