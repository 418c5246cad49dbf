# An interactive busybox shell on the console named by rxen.tty= (default hvc0; ttyAMA0
# for the SBSA UART), for `rxl console` to drive. Ends when the shell reads `exit`, or
# after 90 s so that a failed scenario does not leave the guest running.
tty=hvc0
for arg in $(cat /proc/cmdline); do
  case "$arg" in rxen.tty=*) tty=${arg#rxen.tty=} ;; esac
done
echo "=== RXEN-CONSOLE-SHELL-READY tty=$tty ===" > "/dev/$tty"
timeout 90 sh -i < "/dev/$tty" > "/dev/$tty" 2>&1
echo "=== RXEN-CONSOLE-SHELL-DONE tty=$tty ==="
