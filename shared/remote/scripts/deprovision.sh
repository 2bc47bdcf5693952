#!/bin/bash
# deprovision.sh: generalize the guest before capture. The Azure agent removes the admin user
# (and its home), host keys and provisioning state; then flush everything to disk.
set -euo pipefail

if command -v waagent >/dev/null; then
    waagent -deprovision+user -force
else
    echo "deprovision: waagent not found; only syncing disks" >&2
fi
sync
echo '{"deprovisioned": true}'
