# rxl-reboot guest script: reboot at once (the domain shuts down with reason reboot).
echo "=== RXEN-GUEST-REBOOTING ==="
sync
reboot -f
