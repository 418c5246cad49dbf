# rxl-wait guest script: wait to be shut down from dom0 (`rxl shutdown`). Linux runs
# /sbin/poweroff when told so through control/shutdown; busybox's would only signal
# init (this initramfs has none), so put a script there that says so and powers off.
rm -f /sbin/poweroff
printf '#!/bin/sh\necho "=== RXEN-GUEST-POWEROFF-REQUESTED ===" > /dev/hvc0\nsync\nexec /bin/busybox poweroff -f\n' > /sbin/poweroff
chmod +x /sbin/poweroff
echo "=== RXEN-GUEST-WAITING ==="
sleep 300
