# Guest side of net-bench: eth0 is served by the kernel's xen-netback (xl create),
# eth1 by rxnetback (hot-plugged with `rxl network-attach`), each on its own dom0
# bridge and link-local subnet. dom0 -> guest: the guest fetches dom0's file over each
# NIC (busybox wget from dom0's httpd), rxen.bench_rounds rounds, interleaved, and
# prints the times; guest -> dom0: the guest serves the same amount over httpd and dom0
# fetches it.
MB=8                  # the file's size, MiB (it lives in RAM on both sides)
FETCHES=1             # fetches of it per timed round
ROUNDS=4
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rxen.bench_mib=*) MB=${arg#rxen.bench_mib=} ;;
    rxen.bench_fetches=*) FETCHES=${arg#rxen.bench_fetches=} ;;
    rxen.bench_rounds=*) ROUNDS=${arg#rxen.bench_rounds=} ;;
  esac
done
PORT=8080
KERNEL_IP=169.254.1.2 KERNEL_PEER=169.254.1.1
RX_IP=169.254.2.2     RX_PEER=169.254.2.1
cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# The guest's CPU ticks so far: "busy total steal" (busy: user, nice, system, irq,
# softirq), to say whether its vCPU was the bottleneck of a round.
ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat; }
wait_if() { # wait_if IFACE SECONDS
  i=0
  while [ ! -e "/sys/class/net/$1" ]; do i=$((i + 1)); [ "$i" -gt $(($2 * 5)) ] && return 1; sleep 0.2; done
}
insmod /lib/modules/xen-netfront.ko || exit 1
ifconfig lo 127.0.0.1 up
wait_if eth0 60 || { echo "BENCH: no eth0"; exit 1; }
ifconfig eth0 "$KERNEL_IP" netmask 255.255.255.0 up || exit 1
echo "NET-BENCH eth0 mac=$(cat /sys/class/net/eth0/address)"
echo "=== BENCH-GUEST-READY ==="
wait_if eth1 120 || { echo "BENCH: no eth1"; exit 1; }
ifconfig eth1 "$RX_IP" netmask 255.255.255.0 up || exit 1
echo "NET-BENCH eth1 mac=$(cat /sys/class/net/eth1/address)"
# The peers answer before anything is timed.
for p in "$KERNEL_PEER" "$RX_PEER"; do
  i=0
  until ping -c 1 -W 2 "$p" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -gt 30 ] && { echo "BENCH: $p does not answer"; exit 1; }
  done
done
mkdir -p /tmp/www
dd if=/dev/zero of=/tmp/www/blob bs=1M count=$MB 2>/dev/null || exit 1
httpd -p "$PORT" -h /tmp/www || exit 1
round=0
while [ "$round" -lt "$ROUNDS" ]; do
  round=$((round + 1))
  # The order alternates, so that neither NIC always goes first.
  if [ $((round % 2)) = 1 ]; then nics="eth0 eth1"; else nics="eth1 eth0"; fi
  for nic in $nics; do
    if [ $nic = eth0 ]; then peer=$KERNEL_PEER; else peer=$RX_PEER; fi
    t0=$(cs)
    # shellcheck disable=SC2046 # three numbers
    set -- $(ticks)
    i=0
    while [ "$i" -lt "$FETCHES" ]; do
      wget -q -O /dev/null "http://$peer:$PORT/blob" || { echo "BENCH: wget from $peer failed"; exit 1; }
      i=$((i + 1))
    done
    t1=$(cs)
    # shellcheck disable=SC2046 # three numbers
    set -- "$@" $(ticks)
    echo "BENCH dir=dom0-to-guest nic=$nic round=$round mib=$((MB * FETCHES)) cs=$((t1 - t0))" \
      "guest-busy=$(( ($4 - $1) * 100 / ($5 - $2 + 1) ))% steal=$(( $6 - $3 ))"
  done
done
echo "=== BENCH-GUEST-SERVING ==="
# dom0 now fetches /blob from this guest over both NICs; it publishes /done when finished.
i=0
until wget -q -O /dev/null "http://$KERNEL_PEER:$PORT/done" 2>/dev/null; do
  i=$((i + 1)); [ "$i" -gt 900 ] && { echo "BENCH: dom0 never finished"; exit 1; }
  sleep 1
done
echo "=== BENCH-GUEST-DONE ==="
