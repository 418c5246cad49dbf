# rxl-fdt guest script: what the guest was given: CPUs online, the GIC, memory, and
# its device tree (/sys/firmware/fdt) as 32-bit words, one "FDTW" line per 16 bytes,
# for dom0 to compare with the DTB rxl wrote.
cpus=$(grep -c ^processor /proc/cpuinfo)
mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
gic=none
if grep -q GICv3 /proc/interrupts; then gic=GICv3; elif grep -q GIC- /proc/interrupts; then gic=GICv2; fi
echo "=== RXEN-GUEST-HELLO uname=$(uname -srm) cpus=$cpus memtotal_kb=$mem_kb ==="
echo "=== RXEN-GUEST-CPUS online=$(cat /sys/devices/system/cpu/online) gic=$gic ==="
od -An -v -tx4 /sys/firmware/fdt | sed 's/^ */FDTW /'
ttys=""
for t in /sys/class/tty/ttyAMA[0-9]* /sys/class/tty/hvc[0-9]*; do [ -e "$t" ] && ttys="$ttys${t##*/} "; done
echo "=== RXEN-GUEST-TTYS $ttys==="
echo "=== RXEN-GUEST-FDT-END bytes=$(wc -c < /sys/firmware/fdt) ==="
