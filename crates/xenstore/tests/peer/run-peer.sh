#!/bin/sh
# run-peer.sh - run Debian's Xen 4.17 C xenstored or oxenstored as a reference
# peer for rxenstored's differential tests and benchmarks, on a unix socket,
# on a machine without Xen (xs-peer-shim.c fakes the hypervisor interfaces).
#
#   run-peer.sh prepare          # fetch xen-utils-4.17, build the shim; print the cache dir
#   run-peer.sh c     DIR        # C xenstored in the foreground, socket DIR/socket
#   run-peer.sh ocaml DIR        # oxenstored in the foreground,  socket DIR/socket
#
# Environment:
#   XS_PEER_CACHE  cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/rxen-xs-peer)
#   XS_PEER_DEB    a xen-utils-4.17 .deb to use instead of `apt-get download`
# Needs: gcc and libxen-dev (the shim's headers), dpkg-deb, and either an apt
# that can download xen-utils-4.17 (Debian bookworm, amd64) or XS_PEER_DEB.
# Exit status 77 means the peer cannot be had on this machine (tests skip).
set -eu

SKIP=77
here=$(cd "$(dirname "$0")" && pwd)
cache=${XS_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rxen-xs-peer}
pkg=xen-utils-4.17
bindir_rel=usr/lib/xen-4.17/bin

die_skip() { echo "run-peer.sh: $*" >&2; exit "$SKIP"; }

prepare() {
    mkdir -p "$cache"
    # Several test processes may prepare at once: serialise on a lock file.
    if command -v flock >/dev/null 2>&1 && [ -z "${XS_PEER_LOCKED:-}" ]; then
        XS_PEER_LOCKED=1 XS_PEER_CACHE="$cache" flock "$cache/.lock" "$0" prepare >/dev/null
        return
    fi
    if [ ! -x "$cache/root/$bindir_rel/xenstored" ]; then
        command -v dpkg-deb >/dev/null 2>&1 || die_skip "dpkg-deb not found"
        deb=${XS_PEER_DEB:-}
        if [ -z "$deb" ]; then
            rm -f "$cache"/${pkg}_*.deb
            (cd "$cache" && apt-get download "$pkg" >/dev/null 2>"$cache/apt.log") ||
                die_skip "apt-get download $pkg failed (see $cache/apt.log)"
            deb=$(ls "$cache"/${pkg}_*.deb 2>/dev/null | head -n 1)
            [ -n "$deb" ] || die_skip "apt-get download $pkg left no .deb"
        fi
        rm -rf "$cache/root.tmp"
        dpkg-deb -x "$deb" "$cache/root.tmp" || die_skip "cannot unpack $deb"
        rm -rf "$cache/root" && mv "$cache/root.tmp" "$cache/root"
    fi
    if [ ! -f "$cache/xs-peer-shim.so" ] || [ "$here/xs-peer-shim.c" -nt "$cache/xs-peer-shim.so" ]; then
        command -v gcc >/dev/null 2>&1 || die_skip "gcc not found"
        [ -f /usr/include/xenctrl.h ] || die_skip "libxen-dev headers (xenctrl.h) not found"
        gcc -Wall -O2 -shared -fPIC -o "$cache/xs-peer-shim.so.tmp" "$here/xs-peer-shim.c" -ldl ||
            die_skip "cannot build xs-peer-shim.so"
        mv "$cache/xs-peer-shim.so.tmp" "$cache/xs-peer-shim.so"
    fi
}

run_c() {
    dir=$1
    shift
    exec env XENSTORED_RUNDIR="$dir" LD_PRELOAD="$cache/xs-peer-shim.so" \
        "$cache/root/$bindir_rel/xenstored" --no-fork --pid-file "$dir/pid" "$@"
}

run_ocaml() {
    dir=$1
    cat >"$dir/oxenstored.conf" <<CONF
pid-file = $dir/pid
merge-activate = true
perms-activate = true
perms-watch-activate = true
quota-activate = true
quota-maxentity = 1000
quota-maxsize = 2048
quota-maxwatch = 128
quota-transaction = 10
quota-maxrequests = 1024
quota-path-max = 1024
persistent = false
xenstored-log-file = $dir/oxenstored.log
xenstored-log-level = warn
access-log-file = $dir/oxenstored-access.log
xenstored-kva = /proc/xen/xsd_kva
xenstored-port = /proc/xen/xsd_port
CONF
    exec env XS_PEER_SOCKET="$dir/socket" LD_PRELOAD="$cache/xs-peer-shim.so" \
        "$cache/root/$bindir_rel/oxenstored" --no-fork --config-file "$dir/oxenstored.conf"
}

cmd=${1:-}
case "$cmd" in
prepare)
    prepare
    echo "$cache"
    ;;
c | ocaml)
    [ $# -ge 2 ] || { echo "usage: run-peer.sh $cmd DIR" >&2; exit 2; }
    prepare
    mkdir -p "$2"
    dir=$(cd "$2" && pwd)
    shift 2
    if [ "$cmd" = c ]; then run_c "$dir" "$@"; else run_ocaml "$dir"; fi
    ;;
*)
    echo "usage: run-peer.sh prepare | c DIR [xenstored options] | ocaml DIR" >&2
    exit 2
    ;;
esac
