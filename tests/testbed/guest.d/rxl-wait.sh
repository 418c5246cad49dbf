# rxl-wait guest script: wait to be shut down from dom0 (`rxl shutdown`). Linux runs
# /sbin/poweroff when told so through control/shutdown; busybox's would only signal
# init (this initramfs has none), so put a script there that says so and powers off.
rm -f /sbin/poweroff
printf '#!/bin/sh\necho "=== RXEN-GUEST-POWEROFF-REQUESTED ===" > /dev/hvc0\nsync\nexec /bin/busybox poweroff -f\n' > /sbin/poweroff
chmod +x /sbin/poweroff
# What a distribution's CPU hot-plug udev rule does (for `rxl vcpu-set`): Linux's Xen
# driver takes a vCPU that xenstore marks offline down itself, and makes one marked
# online present again, which userspace then brings up. Each change is reported.
in_cpu_list() { # CPU LIST -- CPU is in LIST, the kernel's "0-1,3" format
  for _r in $(echo "$2" | tr , ' '); do
    case $_r in
      *-*) [ "$1" -ge "${_r%-*}" ] && [ "$1" -le "${_r#*-}" ] && return 0 ;;
      *) [ "$1" = "$_r" ] && return 0 ;;
    esac
  done
  return 1
}
(
  cpus=/sys/devices/system/cpu
  shown=
  while :; do
    present=$(cat $cpus/present); online=$(cat $cpus/online)
    for c in $cpus/cpu[0-9]*; do
      n=${c##*/cpu}
      if [ -f "$c/online" ] && in_cpu_list "$n" "$present" && ! in_cpu_list "$n" "$online"; then
        echo 1 > "$c/online" 2>/dev/null
      fi
    done
    online=$(cat $cpus/online)
    if [ "$online" != "$shown" ]; then
      echo "=== RXEN-GUEST-CPUS online=$online present=$(cat $cpus/present) ==="
      shown=$online
    fi
    sleep 0.5
  done
) &
echo "=== RXEN-GUEST-WAITING ==="
sleep 300
