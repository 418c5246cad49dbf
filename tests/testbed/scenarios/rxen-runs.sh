# rxen-runs: every rxen binary runs in dom0, and `rxl info` tells the truth about the
# hypervisor: its xen_major/xen_minor/xen_extra/xen_version lines must equal Debian's
# `xl info` in the same boot and /sys/hypervisor/version/*.
# timeout: 90

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$TESTBED/rxen-version" 2>/dev/null)
for b in rxl rxenstored rxconsoled rxblkback rxnetback; do
  out=$("$b" --version 2>&1)
  rc=$?
  echo "$b --version -> rc=$rc: $out"
  [ "$rc" -eq 0 ] || fail "$b --version exited with status $rc: $out"
  case "$out" in
    "$b ${version:-[0-9]}"*) pass "$b --version prints '$out'" ;;
    *) fail "$b --version printed '$out', expected '$b ${version:-<version>}'" ;;
  esac
done

# The truth, twice: the hypervisor's own sysfs view, and Debian's xl (the reference).
sys_major=$(cat /sys/hypervisor/version/major)
sys_minor=$(cat /sys/hypervisor/version/minor)
sys_extra=$(cat /sys/hypervisor/version/extra)
log "/sys/hypervisor/version: $sys_major.$sys_minor$sys_extra"
start_debian_xenstored
xl info > /tmp/xl-info.txt 2>&1 || { cat /tmp/xl-info.txt; fail "Debian's xl info failed"; }
for k in xen_major xen_minor xen_extra; do
  log "xl info: $k = $(info_field "$k" < /tmp/xl-info.txt)"
done
expect_eq "xl info xen_major matches sysfs" "$(info_field xen_major < /tmp/xl-info.txt)" "$sys_major"

# rxl info (through rxen's own xen crate, /dev/xen/privcmd).
rxl info > /tmp/rxl-info.txt 2>&1
rc=$?
show_file "rxl info" /tmp/rxl-info.txt
[ "$rc" -eq 0 ] || fail "rxl info exited with status $rc: $(tail -n 1 /tmp/rxl-info.txt)"
for k in xen_major xen_minor xen_extra; do
  got=$(info_field "$k" < /tmp/rxl-info.txt)
  [ -n "$got" ] || fail "rxl info printed no '$k' line (expected xl's format '$k : value')"
  expect_eq "rxl info $k equals xl info's" "$got" "$(info_field "$k" < /tmp/xl-info.txt)"
done
expect_eq "rxl info xen_major equals /sys/hypervisor/version/major" "$(info_field xen_major < /tmp/rxl-info.txt)" "$sys_major"
expect_eq "rxl info xen_minor equals /sys/hypervisor/version/minor" "$(info_field xen_minor < /tmp/rxl-info.txt)" "$sys_minor"
expect_eq "rxl info xen_extra equals /sys/hypervisor/version/extra" "$(info_field xen_extra < /tmp/rxl-info.txt)" "$sys_extra"
expect_eq "rxl info xen_version" "$(info_field xen_version < /tmp/rxl-info.txt)" "$sys_major.$sys_minor$sys_extra"
