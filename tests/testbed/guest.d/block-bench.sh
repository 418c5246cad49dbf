# Guest side of block-bench: the same dom0 file as xvda (the kernel's xen-blkback,
# through a loop device) and, one after the other, xvdb (rxblkback without indirect
# descriptors) and xvdc (rxblkback offering 256 indirect segments). In each phase,
# sequential 1 MiB and random 4 KiB reads and writes with O_DIRECT on xvda and on
# rxblkback's disk, twice, interleaved.
MB=16          # sequential transfer per run
OPS=60         # random 4 KiB operations per run
BLOCKS=4096    # 4 KiB blocks in the first 16 MiB
cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
wait_dev() {
  i=0
  while [ ! -b "/dev/$1" ]; do i=$((i + 1)); [ "$i" -gt $(($2 * 5)) ] && return 1; sleep 0.2; done
}
# What blkfront negotiated with a backend (segments per request, request size,
# queues) and its kernel line (indirect descriptors, persistent grants).
queue_info() {
  q=/sys/block/$1/queue
  echo "BENCH-QUEUE dev=$1 max_segments=$(cat $q/max_segments) max_sectors_kb=$(cat $q/max_sectors_kb)" \
    "logical_block_size=$(cat $q/logical_block_size) nr_requests=$(cat $q/nr_requests)" \
    "hw_queues=$(ls /sys/block/$1/mq | wc -l)"
  dmesg | grep "blkfront: $1:" | tail -n 1 | sed 's/^/BENCH-DMESG /'
}
# Requests completed on DEV: reads + writes (fields 1 and 5 of /sys/block/DEV/stat).
ios() { awk '{ print $1 + $5 }' "/sys/block/$1/stat"; }
IOS0=0
PHASE=1
report() { # report DEV TEST UNITS CS
  echo "BENCH dev=$1 test=$2 units=$3 cs=$4 requests=$(( $(ios "$1") - IOS0 )) phase=$PHASE"
}
random_io() { # random_io DEV read|write
  r=12345; n=0; IOS0=$(ios "$1"); t0=$(cs)
  while [ $n -lt $OPS ]; do
    r=$(( (r * 1103515245 + 12345) % 2147483648 )); b=$((r % BLOCKS))
    if [ "$2" = read ]; then
      dd if="/dev/$1" of=/dev/null bs=4096 count=1 skip=$b iflag=direct 2>/dev/null || return 1
    else
      dd if=/tmp/4k of="/dev/$1" bs=4096 count=1 seek=$b oflag=direct 2>/dev/null || return 1
    fi
    n=$((n + 1))
  done
  report "$1" "rand4k-$2" $OPS $(( $(cs) - t0 ))
}
# The same tests by one process (rxen-hostile disk-bench: O_DIRECT pread/pwrite in a
# loop, timed in microseconds), without a dd process per 4 KiB operation; the time
# is reported in centiseconds with two decimals.
TOOL_SEQ=64    # MiB per sequential run (the whole image)
TOOL_OPS=1000  # random 4 KiB operations per run
tool_io() { # tool_io DEV TEST UNITS ARGS...
  d=$1; t=$2; u=$3; shift 3
  IOS0=$(ios "$d")
  out=$(rxen-hostile disk-bench --device "/dev/$d" "$@") || return 1
  us=${out##* us=}
  report "$d" "$t" "$u" "$(awk -v us="$us" 'BEGIN { printf "%.2f", us / 10000 }')"
}
tool_rounds() { # tool_rounds DEV
  tool_io "$1" tool-seq1m-write $TOOL_SEQ --write --bs 1048576 --count $TOOL_SEQ || return 1
  tool_io "$1" tool-seq1m-read $TOOL_SEQ --bs 1048576 --count $TOOL_SEQ || return 1
  tool_io "$1" tool-rand4k-read $TOOL_OPS --count $TOOL_OPS --random-span $BLOCKS || return 1
  tool_io "$1" tool-rand4k-write $TOOL_OPS --write --count $TOOL_OPS --random-span $BLOCKS || return 1
}
rounds() { # rounds DEV DEV
  for _ in 1 2; do
    for d in "$@"; do
      IOS0=$(ios $d); t0=$(cs); dd if=/dev/zero of=/dev/$d bs=1M count=$MB oflag=direct 2>/dev/null || return 1
      report $d seq1m-write $MB $(( $(cs) - t0 ))
      IOS0=$(ios $d); t0=$(cs); dd if=/dev/$d of=/dev/null bs=1M count=$MB iflag=direct 2>/dev/null || return 1
      report $d seq1m-read $MB $(( $(cs) - t0 ))
      random_io $d read || return 1
      random_io $d write || return 1
      tool_rounds $d || return 1
    done
  done
}
insmod /lib/modules/xen-blkfront.ko || exit 1
wait_dev xvda 60 || { echo "BENCH: no xvda"; exit 1; }
echo "=== BENCH-GUEST-READY ==="
dd if=/dev/urandom of=/tmp/4k bs=4096 count=1 2>/dev/null
wait_dev xvdb 120 || { echo "BENCH: no xvdb"; exit 1; }
queue_info xvda
queue_info xvdb
rounds xvda xvdb || exit 1
echo "=== BENCH-PHASE1-DONE ==="
PHASE=2
wait_dev xvdc 300 || { echo "BENCH: no xvdc"; exit 1; }
queue_info xvdc
rounds xvda xvdc || exit 1
echo "=== BENCH-GUEST-DONE ==="
