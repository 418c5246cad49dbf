# net-bench: rxnetback against the kernel's xen-netback, in one guest: eth0 through
# xen-netback (Debian's xl create, with a busybox hotplug script doing what
# /etc/xen/scripts/vif-bridge does), eth1 through rxnetback (`rxl network-attach`),
# each on its own bridge and link-local subnet. A 64 MiB file over HTTP (busybox
# httpd and wget), fetched twice per round (128 MiB), dom0 -> guest (timed in the
# guest) and guest -> dom0 (timed in dom0), six rounds each, interleaved (the order
# alternates), so that the shared host's load changes hit both NICs alike; dom0
# prints each result and the ratios. On a quiet host a round takes 1-3 s (8 MiB
# took 0.1-0.3 s: too short to time in centiseconds); the guest takes the size,
# fetches and rounds from its command line.
# Not in all.list: a benchmark (run.sh net-bench).
# timeout: 900

MB=64
FETCHES=2
ROUNDS=6
PORT=8080
KBR=xbrk RBR=xbrr
KERNEL_PEER=169.254.1.1 KERNEL_GUEST=169.254.1.2
RX_PEER=169.254.2.1     RX_GUEST=169.254.2.2

start_debian_xenstored
start_xenconsoled
load_module tun bridge xen-netback
run brctl addbr $KBR
run brctl addbr $RBR
run ifconfig $KBR $KERNEL_PEER netmask 255.255.255.0 up
run ifconfig $RBR $RX_PEER netmask 255.255.255.0 up
ifconfig lo 127.0.0.1 up

# What Debian's /etc/xen/scripts/vif-bridge does, in busybox sh: libxl runs it with
# "online"/"offline", the interface in $vif and the backend directory in $XENBUS_PATH.
cat > /tmp/vif-hotplug <<'SCRIPT'
#!/bin/sh
case "$1" in
online|add)
  bridge=$(xenstore-read "$XENBUS_PATH/bridge") || exit 1
  ifconfig "$vif" up || exit 1
  brctl addif "$bridge" "$vif" || exit 1
  xenstore-write "$XENBUS_PATH/hotplug-status" connected ;;
offline|remove)
  bridge=$(xenstore-read "$XENBUS_PATH/bridge") && brctl delif "$bridge" "$vif"
  ifconfig "$vif" down ;;
esac
exit 0
SCRIPT
chmod 755 /tmp/vif-hotplug

mkdir -p /tmp/www
run dd if=/dev/zero of=/tmp/www/blob bs=1M count=$MB
httpd -f -p $PORT -h /tmp/www &
HTTPD=$!
rxnetback 2> /var/log/rxnetback.log &
NETPID=$!

name=net-bench
cfg=$(guest_cfg "$name" net-bench memory=256 "extra_args=rxen.bench_mib=$MB rxen.bench_fetches=$FETCHES rxen.bench_rounds=$ROUNDS" \
  "vif=['mac=00:16:3e:00:01:01,bridge=$KBR,script=/tmp/vif-hotplug']")
run xl create "$cfg"
domid=$(xl domid "$name")
log=$(guest_console_log "$name")
wait_for 150 "the guest's eth0 (xen-netback)" grep -q 'BENCH-GUEST-READY' "$log"
log "xl-made vif (kernel xen-netback), for comparison with rxl's layout:"
xenstore-ls -p "/local/domain/$domid/device/vif/0"
xenstore-ls -p "/local/domain/0/backend/vif/$domid/0"
run rxl network-attach "$domid" mac=00:16:3e:00:02:01 bridge=$RBR
rxl network-list "$domid"
xenstore-ls -p "/local/domain/0/backend/rxvif/$domid/1"
wait_for 500 "the guest's dom0-to-guest runs" grep -q 'BENCH-GUEST-SERVING' "$log"
# The guest's results now, so that they are in the log even if the rest times out.
tr -d '\r' < "$log" | grep '^BENCH '
: > /tmp/net-bench-dom0.txt
round=0
while [ $round -lt $ROUNDS ]; do
  round=$((round + 1))
  # The order alternates, so that neither NIC always goes first.
  if [ $((round % 2)) = 1 ]; then nics="eth0 eth1"; else nics="eth1 eth0"; fi
  for nic in $nics; do
    if [ $nic = eth0 ]; then peer=$KERNEL_GUEST; else peer=$RX_GUEST; fi
    t0=$(uptime_cs)
    i=0
    while [ $i -lt $FETCHES ]; do
      run wget -q -O /dev/null "http://$peer:$PORT/blob"
      i=$((i + 1))
    done
    echo "BENCH dir=guest-to-dom0 nic=$nic round=$round mib=$((MB * FETCHES)) cs=$(( $(uptime_cs) - t0 ))" \
      | tee -a /tmp/net-bench-dom0.txt
  done
done
touch /tmp/www/done
wait_for 120 "the guest to finish" grep -q 'BENCH-GUEST-DONE' "$log"
# dom0's server is not needed any more: no socket of it holds the guest's packets
# while the domain goes away.
kill $HTTPD
{ tr -d '\r' < "$log" | grep '^BENCH '; cat /tmp/net-bench-dom0.txt; } > /tmp/net-bench.txt
# Sum the rounds per direction and NIC; throughput ratio = kernel time / rx time.
awk '{ split($2, d, "="); split($3, n, "="); split($5, m, "="); split($6, c, "=");
       s[d[2] "," n[2]] += c[2]; b[d[2] "," n[2]] += m[2]; dirs[d[2]] = 1 }
     END { for (k in dirs) { a = s[k ",eth0"]; r = s[k ",eth1"];
             if (a > 0 && r > 0)
               printf "BENCH-RATIO dir=%s xen-netback_MiBps=%.2f rxnetback_MiBps=%.2f ratio=%.2f\n",
                 k, b[k ",eth0"] * 100 / a, b[k ",eth1"] * 100 / r, a / r } }' /tmp/net-bench.txt
# One run hung dom0's xenwatch here (the domain never went): if the guest is not
# gone in 45 s, show where xenwatch and the xl processes wait and what the kernel said.
(
  sleep 45
  if xl domid "$name" >/dev/null 2>&1; then
    log "the guest is still there after 45 s: xenwatch, xl and the kernel's log"
    for p in $(pidof xenwatch) $(pidof xl); do
      echo "stack of $p ($(cat /proc/$p/comm)):"; cat "/proc/$p/stack" 2>&1
    done
    xenstore-ls -f "/local/domain/0/backend/vif/$domid" 2>&1
    dmesg | tail -n 40
  fi
) &
WATCH=$!
wait_domain_gone "$name" 60
kill $WATCH 2>/dev/null
# xl does not know rxl's NIC: rxnetback removes its backend directory once the domain is gone.
wait_for 20 "rxnetback to remove the dead guest's backend nodes" \
  sh -c "! xenstore-exists /local/domain/0/backend/rxvif/$domid"
pass "no rxvif nodes left after the guest died"
check "guest script ended with rc=0" grep -q 'RXEN-GUEST-END script=net-bench rc=0' "$log"
kill $NETPID
show_file rxnetback /var/log/rxnetback.log
