#!/bin/bash
# run.sh -- rxen's test bed: boot the real Xen 4.17 arm64 hypervisor with a Debian Linux
# dom0 under qemu-system-aarch64 (TCG), with rxen's binaries and Debian's Xen tools in
# dom0, run scenarios there and judge them from the serial log.
#
#   tests/testbed/run.sh [OPTIONS] SCENARIO... | all | main
#
#   all        every boot group of scenarios/all.list (one line = one boot)
#   main       the README's main job (scenarios/main.sh)
#   SCENARIO   scenarios/NAME.sh; several names share one boot, in the order given
#
# Options:
#   --gic 2|3        GIC version of the virt machine (default 3)
#   --smp N          CPUs of the emulated machine (default 2)
#   --mem MiB        RAM of the emulated machine (default 2048; dom0 gets 512M)
#   --cpu MODEL      QEMU CPU model (default max)
#   --timeout S      overall limit of one boot in seconds (default: 180 + the sum of
#                    the scenarios' limits)
#   --keep-going     run every scenario even after one failed (default: stop a boot at
#                    the first failing scenario, and `all` at the first failing boot)
#   --no-build       do not run cargo; use the rxen binaries built last time
#   -v, --verbose    print the whole serial log live (default: markers and results only)
#   --list           list the scenarios and the boots of `all`, then exit
#   -h, --help
#
# Environment: RXEN_TESTBED_CACHE (default /var/cache/rxen-testbed): downloaded and
# unpacked Debian packages and the dom0 base image, reused by later runs.
# RXEN_TESTBED_TARGET_DIR (default <checkout>/target/aarch64-testbed): cargo's target
# directory for the aarch64 cross build. Logs go to tests/testbed/out/logs/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${RXEN_TESTBED_CACHE:-/var/cache/rxen-testbed}
TARGET_DIR=${RXEN_TESTBED_TARGET_DIR:-$ROOT/target/aarch64-testbed}
OUT=$HERE/out
LOGDIR=$OUT/logs
TARGET=aarch64-unknown-linux-gnu
RXEN_BINS="rxl rxenstored rxconsoled rxblkback rxnetback"
# Test programs that run inside guests (copied into the guest initramfs's /bin).
GUEST_BINS="rxen-hostile"
# Version of the dom0 base image's layout: bump when the base image's contents change.
BASE_LAYOUT=4
DOM0_MEM=512M
BOOT_ALLOWANCE=180   # seconds for Xen + dom0 to boot and power off, on top of scenarios

GIC=3 SMP=2 MEM=2048 CPU=max OVERALL_TIMEOUT="" KEEP_GOING=0 BUILD=1 VERBOSE=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "run.sh: ERROR: $*" >&2; exit 2; }
# The README's commands work on a fresh machine: install what is missing first (about a
# second when nothing is; RXEN_SKIP_SETUP=1 skips it, as run-all.sh does after its own).
if [ "${RXEN_SKIP_SETUP:-0}" != 1 ]; then
  "$ROOT/tests/setup-host.sh" || die "tests/setup-host.sh failed"
fi
T0=$(date +%s.%N)
stamp() { printf '[host %6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { print a - b }')" "$*"; }

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gic) GIC=${2:?--gic needs 2 or 3}; shift 2 ;;
    --smp) SMP=${2:?--smp needs a number}; shift 2 ;;
    --mem) MEM=${2:?--mem needs MiB}; shift 2 ;;
    --cpu) CPU=${2:?--cpu needs a model}; shift 2 ;;
    --timeout) OVERALL_TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --keep-going) KEEP_GOING=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) usage 0 ;;
    --list)
      echo "scenarios:"; for f in "$HERE"/scenarios/*.sh; do n=$(basename "$f" .sh); printf '  %-20s %s\n' "$n" "$(sed -n '1s/^# *//p' "$f")"; done
      echo "boots of 'all' (scenarios/all.list):"; grep -v '^ *\(#\|$\)' "$HERE/scenarios/all.list" | sed 's/^/  /'
      exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -gt 0 ] || { echo "run.sh: name scenarios, or all, or main" >&2; usage 2; }
case "$GIC" in 2|3) ;; *) die "--gic must be 2 or 3" ;; esac

# ---------------------------------------------------------------- which boots
# BOOTS[i] = space-separated scenario names sharing boot i.
BOOTS=()
if [ "${args[*]}" = all ]; then
  while read -r line; do
    line=${line%%#*}
    [ -n "${line// /}" ] && BOOTS+=("$(echo $line)")
  done < "$HERE/scenarios/all.list"
else
  for a in "${args[@]}"; do
    [ "$a" != all ] || die "'all' cannot be combined with scenario names"
  done
  BOOTS=("${args[*]}")
fi
for b in "${BOOTS[@]}"; do
  for s in $b; do
    case "$s" in @gic=[23]|@mem=[0-9]*) continue ;; @*) die "unknown boot option '$s' in all.list (know @gic=2|3, @mem=MiB)" ;; esac
    [ -f "$HERE/scenarios/$s.sh" ] || die "no scenario '$s' (no $HERE/scenarios/$s.sh)"
  done
done

# ---------------------------------------------------------------- 1. Debian packages
DEBS=$CACHE/debs
ROOTFS=$CACHE/root            # every package unpacked (dpkg-deb -x) on top of each other
mkdir -p "$DEBS" "$LOGDIR"
# foreign_arch ARCH -- dpkg knows ARCH (grep without -q: under pipefail an early exit
# of grep -q can fail the pipeline with dpkg's SIGPIPE).
foreign_arch() { dpkg --print-foreign-architectures | grep -x "$1" >/dev/null; }
# Several checkouts may share the cache: one run at a time prepares it.
exec 9> "$CACHE/.lock"
flock 9
apt_ok=1
if ! foreign_arch arm64; then
  apt_ok=0
fi
kpkg=""
if [ "$apt_ok" = 1 ]; then
  kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  kpkg=${kpkg%:arm64}
fi
if [ -z "$kpkg" ]; then
  # No arm64 package lists (offline or not set up): use the kernel cached last time.
  kpkg=$(ls "$DEBS" 2>/dev/null | sed -n 's/^\(linux-image-[0-9][^_]*-arm64\)_.*/\1/p' | sort -V | tail -n 1)
  [ -n "$kpkg" ] || die "cannot find Debian's arm64 kernel: run tests/setup-host.sh (dpkg --add-architecture arm64, apt-get update)"
fi
KVER=${kpkg#linux-image-}
# The 32-bit guest's kernel: the one Debian's linux-image-armmp-lpae:armhf depends on
# (its /boot/vmlinuz is a zImage; Xen guest support is built in), and armhf busybox.
# They go to their own directory and root so that the arm64 lookups never see them.
DEBS32=$CACHE/debs-armhf
ROOTFS32=$CACHE/root-armhf
KPKG32=""
if foreign_arch armhf; then
  KPKG32=$(apt-cache depends linux-image-armmp-lpae:armhf 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  KPKG32=${KPKG32%:armhf}
fi
if [ -z "$KPKG32" ]; then
  KPKG32=$(ls "$DEBS32" 2>/dev/null | sed -n 's/^\(linux-image-[0-9][^_]*-armmp-lpae\)_.*/\1/p' | sort -V | tail -n 1)
  [ -n "$KPKG32" ] || die "cannot find Debian's armhf kernel: run tests/setup-host.sh (dpkg --add-architecture armhf, apt-get update)"
fi
KVER32=${KPKG32#linux-image-}
PKGS32="$KPKG32 busybox-static"
PKGS="xen-hypervisor-4.17-arm64 $kpkg busybox-static xen-utils-4.17 xen-utils-common
      xenstore-utils libxenmisc4.17 libxenstore4 libxencall1 libxenevtchn1 libxengnttab1
      libxenforeignmemory1 libxendevicemodel1 libxentoollog1 libxentoolcore1 libxenhypfs1
      libyajl2 libc6 libgcc-s1 libncurses6 libtinfo6 libext2fs2 libfdt1 libuuid1 zlib1g
      libcom-err2"
mkdir -p "$DEBS32"
# newest_deb DIR PKG ARCH -- the newest cached .deb of PKG for ARCH (or all), if any.
newest_deb() { ls "$1/${2}_"*"_$3.deb" "$1/${2}_"*_all.deb 2>/dev/null | sort -V | tail -n 1; }
# fetch_debs DIR ARCH PKG... -- apt-get download the packages not cached in DIR yet.
fetch_debs() {
  local dir=$1 arch=$2 need=() p
  shift 2
  for p in "$@"; do
    [ -n "$(newest_deb "$dir" "$p" "$arch")" ] || need+=("$p:$arch")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  stamp "downloading ${#need[@]} Debian $arch packages into $dir"
  dl() { (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${need[@]}" >/dev/null); }
  if ! dl; then
    # Stale package lists name versions the mirror no longer has: refresh once.
    [ "$(id -u)" = 0 ] || die "apt-get download failed; as root, run apt-get update (or tests/setup-host.sh)"
    stamp "apt-get download failed; apt-get update and retry"
    apt-get update -qq && dl || die "apt-get download ${need[*]} failed even after apt-get update (a newer kernel may be listed now: run again; armhf packages need tests/setup-host.sh's dpkg --add-architecture armhf)"
  fi
}
# unpack_debs DIR ARCH ROOT PKG... -- dpkg-deb -x the newest of each into ROOT, again
# only when the set of .deb files changed; prints the set's id.
unpack_debs() {
  local dir=$1 arch=$2 root=$3 id p
  shift 3
  id=$(for p in "$@"; do basename "$(newest_deb "$dir" "$p" "$arch")"; done | sort | md5sum | cut -c1-12)
  if [ "$(cat "$root/.debs-id" 2>/dev/null)" != "$id" ]; then
    stamp "unpacking packages into $root" >&2
    rm -rf "$root"; mkdir -p "$root"
    # (Explicit returns: errexit does not reach into the command substitution.)
    for p in "$@"; do dpkg-deb -x "$(newest_deb "$dir" "$p" "$arch")" "$root" || return 1; done
    echo "$id" > "$root/.debs-id" || return 1
  fi
  echo "$id"
}
# shellcheck disable=SC2086
fetch_debs "$DEBS" arm64 $PKGS
# shellcheck disable=SC2086
fetch_debs "$DEBS32" armhf $PKGS32
# shellcheck disable=SC2086
debs_id=$(unpack_debs "$DEBS" arm64 "$ROOTFS" $PKGS) || die "unpacking the arm64 packages into $ROOTFS failed"
# shellcheck disable=SC2086
debs32_id=$(unpack_debs "$DEBS32" armhf "$ROOTFS32" $PKGS32) || die "unpacking the armhf packages into $ROOTFS32 failed"
XEN=$ROOTFS/boot/xen-4.17-arm64
IMAGE=$CACHE/Image-$KVER
if [ ! -s "$IMAGE" ]; then
  V=$ROOTFS/boot/vmlinuz-$KVER
  if file "$V" | grep -q gzip; then gunzip -c "$V" > "$IMAGE.tmp"; else cp "$V" "$IMAGE.tmp"; fi
  mv "$IMAGE.tmp" "$IMAGE"
fi
[ -s "$XEN" ] || die "no Xen hypervisor at $XEN"
MODDIR=$ROOTFS/lib/modules/$KVER/kernel
ZIMAGE=$ROOTFS32/boot/vmlinuz-$KVER32
file "$ZIMAGE" | grep 'ARM.*zImage' >/dev/null || die "$ZIMAGE is not an ARM zImage"
MODDIR32=$ROOTFS32/lib/modules/$KVER32/kernel

# newc cpio of a directory, files owned by root, in a stable order.
mkcpio() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet); }

# ---------------------------------------------------------------- 2. dom0 base image (cached)
# Everything that does not change from run to run: busybox, Debian's Xen tools and their
# libraries, the kernel modules, the guest kernel. Uncompressed: under TCG the kernel
# unpacks it faster than it would gunzip it.
BASE=$CACHE/dom0-base-$debs_id-$debs32_id-v$BASE_LAYOUT.cpio
if [ ! -s "$BASE" ]; then
  stamp "assembling the dom0 base image $BASE"
  D=$CACHE/dom0-base.d; rm -rf "$D"
  mkdir -p "$D"/{bin,sbin,proc,sys,dev,tmp,run,root,etc/xen,lib/modules/testbed,usr/bin,usr/sbin}
  mkdir -p "$D"/lib/aarch64-linux-gnu "$D"/usr/lib/aarch64-linux-gnu "$D"/usr/lib/xen-4.17 "$D"/testbed/guest
  cp "$ROOTFS/bin/busybox" "$D/bin/busybox"
  cp -a "$ROOTFS"/lib/aarch64-linux-gnu/. "$D"/lib/aarch64-linux-gnu/
  cp -a "$ROOTFS"/lib/ld-linux-aarch64.so.1 "$D"/lib/
  find "$ROOTFS"/usr/lib/aarch64-linux-gnu -maxdepth 1 -name '*.so*' -exec cp -a {} "$D"/usr/lib/aarch64-linux-gnu/ \;
  cp -a "$ROOTFS"/usr/lib/xen-4.17/. "$D"/usr/lib/xen-4.17/
  cp -a "$ROOTFS"/usr/bin/xenstore* "$D"/usr/bin/
  cp -a "$ROOTFS"/etc/xen/. "$D"/etc/xen/
  for m in drivers/xen/xen-evtchn.ko drivers/xen/xen-privcmd.ko drivers/xen/xenfs/xenfs.ko \
           drivers/xen/xen-gntdev.ko drivers/xen/xen-gntalloc.ko \
           drivers/block/xen-blkback/xen-blkback.ko drivers/net/xen-netback/xen-netback.ko \
           drivers/block/loop.ko drivers/net/tun.ko net/bridge/bridge.ko net/llc/llc.ko \
           net/802/stp.ko; do
    if [ -f "$MODDIR/$m" ]; then cp "$MODDIR/$m" "$D/lib/modules/testbed/"
    elif [ -f "$MODDIR/$m.xz" ]; then xz -dc "$MODDIR/$m.xz" > "$D/lib/modules/testbed/$(basename "$m")"
    else echo "run.sh: note: kernel module $m not in the package (built in?)"; fi
  done
  cp "$IMAGE" "$D/testbed/guest/Image"
  cp "$ZIMAGE" "$D/testbed/guest/zImage"
  mkcpio "$D" > "$BASE.tmp"
  rm -f "$CACHE"/dom0-base-*.cpio; mv "$BASE.tmp" "$BASE"; rm -rf "$D"
fi

flock -u 9

# ---------------------------------------------------------------- 3. rxen for aarch64
BINDIR=$TARGET_DIR/$TARGET/release
if [ "$BUILD" = 1 ]; then
  stamp "cross-building rxen for $TARGET (release, static) in $TARGET_DIR"
  (cd "$ROOT" && RUSTC=/usr/bin/rustc \
     CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
     RUSTFLAGS="-C target-feature=+crt-static" \
     /usr/bin/cargo build -q --release --target $TARGET --target-dir "$TARGET_DIR" -j 2 \
       --workspace --bins) || die "the aarch64 cross build failed"
fi
for b in $RXEN_BINS $GUEST_BINS; do
  [ -x "$BINDIR/$b" ] || die "rxen binary $BINDIR/$b missing (cross build failed, or --no-build before any build)"
  file "$BINDIR/$b" | grep -q 'ARM aarch64.*statically linked' || die "$BINDIR/$b is not a static aarch64 binary"
done

# ---------------------------------------------------------------- 4. guest initramfs + dom0 overlay
run_id=$(date -u +%Y%m%d-%H%M%S)
WORK=$OUT/work; rm -rf "$WORK"; mkdir -p "$WORK"
# The guest's PV frontends and /dev/xen devices that are modules in Debian's kernel;
# guest scripts insmod them (the hostile guest loads xen-evtchn and xen-gntalloc and is
# its own block frontend).
GUEST_MODULES="drivers/block/xen-blkfront.ko drivers/net/xen-netfront.ko drivers/xen/xen-evtchn.ko drivers/xen/xen-gntalloc.ko"
# guest_initramfs ROOTFS MODDIR OUT [BINS] -- the guest initramfs (busybox, /init, the
# guest.d scripts and their /guest-lib.sh, GUEST_MODULES, and rxen's guest programs
# BINS in /bin) from one architecture's unpacked packages.
guest_initramfs() {
  local G=$WORK/guest-root m
  rm -rf "$G"; mkdir -p "$G"/{bin,sbin,proc,sys,dev,tmp,guest.d,lib/modules}
  cp "$1/bin/busybox" "$G/bin/busybox"
  cp "$HERE/guest/init" "$G/init"; chmod 755 "$G/init"
  cp "$HERE/guest/lib.sh" "$G/guest-lib.sh"
  cp "$HERE"/guest.d/*.sh "$G/guest.d/"
  for m in ${4:-}; do cp "$BINDIR/$m" "$G/bin/"; done
  for m in $GUEST_MODULES; do
    if [ -f "$2/$m" ]; then cp "$2/$m" "$G/lib/modules/"
    elif [ -f "$2/$m.xz" ]; then xz -dc "$2/$m.xz" > "$G/lib/modules/$(basename "$m")"; fi
  done
  mkcpio "$G" | gzip -1 > "$3"
}
guest_initramfs "$ROOTFS" "$MODDIR" "$WORK/guest.cpio.gz" "$GUEST_BINS"
# The 32-bit (armhf) guest's: the same /init and scripts.
guest_initramfs "$ROOTFS32" "$MODDIR32" "$WORK/guest32.cpio.gz"
# The rxl-timing scenario's minimal guest kernel, whose first instructions write its
# console line (guest/first-line.S): a flat arm64 Image, position independent.
aarch64-linux-gnu-gcc -nostdlib -nostartfiles -static -Wl,-Ttext=0 -Wl,--build-id=none \
  -o "$WORK/first-line.elf" "$HERE/guest/first-line.S" || die "assembling guest/first-line.S failed"
aarch64-linux-gnu-objcopy -O binary "$WORK/first-line.elf" "$WORK/first-line.Image" \
  || die "objcopy of first-line.elf failed"
# Its stopwatch (dom0/timecreate.c), the same for xl and rxl.
aarch64-linux-gnu-gcc -O2 -Wall -static -o "$WORK/timecreate" "$HERE/dom0/timecreate.c" \
  || die "compiling dom0/timecreate.c failed"

# boot_overlay NAMES... -- the per-boot part of dom0's initramfs, appended to the base.
boot_overlay() {
  local O=$WORK/overlay
  rm -rf "$O"; mkdir -p "$O"/testbed/scenarios "$O"/testbed/guest "$O"/opt/rxen/bin
  cp "$HERE/dom0/init" "$O/init"; chmod 755 "$O/init"
  cp "$HERE/dom0/lib.sh" "$HERE/dom0/run-scenarios" "$WORK/timecreate" "$O/testbed/"
  chmod 755 "$O/testbed/run-scenarios"
  cp "$WORK/guest.cpio.gz" "$WORK/guest32.cpio.gz" "$WORK/first-line.Image" "$O/testbed/guest/"
  for b in $RXEN_BINS; do cp "$BINDIR/$b" "$O/opt/rxen/bin/"; done
  : > "$O/testbed/scenarios.list"
  for s in "$@"; do
    cp "$HERE/scenarios/$s.sh" "$O/testbed/scenarios/"
    echo "$s" >> "$O/testbed/scenarios.list"
  done
  echo "KEEP_GOING=$KEEP_GOING" > "$O/testbed/config"
  sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *".*"/&/p' "$ROOT/Cargo.toml" > "$O/testbed/rxen-version"
  mkcpio "$O"
}

# scenario_limit NAME -- the "# timeout: N" of a scenario (default 120, as in dom0).
scenario_limit() {
  local t
  t=$(sed -n 's/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$HERE/scenarios/$1.sh" | head -n 1)
  echo "${t:-120}"
}

# ---------------------------------------------------------------- 5. boot and judge
# RAM starts at 0x40000000; QEMU loads Xen at 0x40200000 and the DTB at RAM+128M. The
# dom0 kernel goes at 0x49000000, its initramfs right after it, 2 MiB aligned.
KADDR=0x49000000
RADDR=$(printf '0x%x' $(( ((KADDR + $(stat -c %s "$IMAGE") + 0x3fffff) / 0x200000) * 0x200000 )))
XEN_ARGS="dom0_mem=$DOM0_MEM console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all"
DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/init loglevel=5"
RESULTS=$WORK/results.tsv; : > "$RESULTS"
LOGS_WRITTEN=()
boot_failed=0
bootno=0
for boot in "${BOOTS[@]}"; do
  bootno=$((bootno + 1))
  # shellcheck disable=SC2086
  set -- $boot
  # all.list lines may start with per-boot options: @gic=2|3, @mem=MiB.
  bgic=$GIC bmem=$MEM
  while [ $# -gt 0 ]; do
    case "$1" in
      @gic=*) bgic=${1#@gic=}; shift ;;
      @mem=*) bmem=${1#@mem=}; shift ;;
      *) break ;;
    esac
  done
  if [ "$boot_failed" = 1 ] && [ "$KEEP_GOING" = 0 ]; then
    for s in "$@"; do printf '%s\tFAIL\t-\tnot run: an earlier boot failed (--keep-going runs it)\n' "$s" >> "$RESULTS"; done
    continue
  fi
  limit=$BOOT_ALLOWANCE
  for s in "$@"; do limit=$((limit + $(scenario_limit "$s"))); done
  [ -z "$OVERALL_TIMEOUT" ] || limit=$OVERALL_TIMEOUT
  boot_overlay "$@" > "$WORK/overlay.cpio"
  cat "$BASE" "$WORK/overlay.cpio" > "$WORK/dom0.cpio"
  tag=gic$bgic-smp$SMP-$(echo "$*" | tr ' ' '+')
  LOG=$LOGDIR/$run_id-boot$bootno-$tag.log
  LOGS_WRITTEN+=("$LOG")
  stamp "boot $bootno: $* (GICv$bgic, $SMP CPUs, $bmem MiB, -cpu $CPU, limit ${limit}s)"
  stamp "serial log: $LOG"
  set +e
  timeout --foreground -k 10 "$limit" qemu-system-aarch64 \
    -machine virt,virtualization=on,gic-version=$bgic -cpu "$CPU" -smp "$SMP" -m "$bmem" \
    -display none -monitor none -nic none -no-reboot \
    -chardev stdio,id=s0,signal=off -serial chardev:s0 \
    -kernel "$XEN" -append "$XEN_ARGS" \
    -device guest-loader,addr=$KADDR,kernel="$IMAGE",bootargs="$DOM0_ARGS" \
    -device guest-loader,addr=$RADDR,initrd="$WORK/dom0.cpio" \
    < /dev/null 2>&1 \
  | perl -MTime::HiRes=time -ne 'BEGIN { $| = 1; $t = time }
        s/\r//g; printf "[%7.2f] %s", time - $t, $_' \
  | tee "$LOG" \
  | if [ "$VERBOSE" = 1 ]; then cat; else grep --line-buffered -E '=== RXEN-|^\[[ 0-9.]+\] (PASS|FAIL): '; fi
  qrc=${PIPESTATUS[0]}
  set -e
  th=()
  if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    th=(--timeout-hit)
    stamp "boot $bootno: overall limit of ${limit}s hit, qemu killed"
  else
    stamp "boot $bootno: qemu exited with status $qrc"
  fi
  if ! perl "$HERE/check-log.pl" --log "$LOG" --scenarios "$HERE/scenarios" --qemu-rc "$qrc" \
        "${th[@]}" --results "$RESULTS" "$@"; then
    boot_failed=1
    echo "##### last 30 lines of the serial log ($LOG):"
    tail -n 30 "$LOG" | sed 's/^/  | /'
  fi
done

# ---------------------------------------------------------------- 6. summary
npass=$(awk -F'\t' '$2 == "PASS"' "$RESULTS" | wc -l)
nfail=$(awk -F'\t' '$2 != "PASS"' "$RESULTS" | wc -l)
echo
echo "test bed summary (default GICv$GIC, all.list lines may set @gic= and @mem=; $SMP CPUs, -cpu $CPU; logs: ${LOGS_WRITTEN[*]:-none})"
printf '  %-24s %-6s %8s  %s\n' SCENARIO RESULT SECONDS REASON
while IFS=$'\t' read -r name res secs reason; do
  printf '  %-24s %-6s %8s  %s\n' "$name" "$res" "$secs" "$reason"
done < "$RESULTS"
stamp "total"
echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
