# Stays up (so that dom0 can look at the guest's xenstore nodes) until dom0 destroys
# the domain.
echo "=== RXEN-GUEST-STAY-UP uname=$(uname -srm) ==="
sleep 600
