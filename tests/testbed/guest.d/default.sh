# Default guest script: say who and what we are.
cpus=$(grep -c ^processor /proc/cpuinfo)
mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
echo "=== RXEN-GUEST-HELLO uname=$(uname -srm) cpus=$cpus memtotal_kb=$mem_kb ==="
