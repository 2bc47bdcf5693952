#!/bin/bash
# deprovision.sh: generalize the guest before capture, leaving nothing of the build in the image.
# 1. the controller's job folders (parameter files with a SAS URL, logs, tokens) and caches;
# 2. cloud-init's record of this VM and its logs (`cloud-init clean --logs --seed`): its
#    user-data holds the SSH host private key handed in through custom data, and the Azure agent
#    leaves it (Azure's guidance for Ubuntu images runs it too);
# 3. the Azure agent: admin user and home, host keys, leases, its own state.
# Prints {"deprovisioned": true, ...} last: the controller waits for that line, not for a timer.
# Runs as root from a staging folder under /tmp, which it removes too.
#
# It runs detached from the SSH session (its own session, output to a file under /run, a tmpfs
# on Azure's images): a session cut mid-way (a dropped link, the controller's host recycled)
# must not leave a half-deprovisioned guest. The session waits for it and prints its output;
# a later attempt that finds its login turned away knows the agent has done its part.
set -euo pipefail

if [[ "${LABIMAGE_DEPROVISION_DETACHED:-}" != 1 ]]; then
    out=$(mktemp /run/labimage-deprovision.XXXXXX)
    LABIMAGE_DEPROVISION_DETACHED=1 setsid /bin/bash "$0" "$@" >"$out" 2>&1 </dev/null &
    status=0
    wait "$!" || status=$?
    cat "$out"
    rm -f -- "$out"
    exit "$status"
fi

jobs_root=/var/lib/labimage/jobs
rm -rf -- "$jobs_root" /var/tmp/labimage-uv-cache
rm -rf -- /root/.cache/pip /root/.cache/uv
find /tmp -maxdepth 1 -name 'labimage-job-*' ! -path "$PWD" -exec rm -rf -- {} +

cloud_init=false
if command -v cloud-init >/dev/null; then
    # the first-boot stages must be over before their record is removed
    timeout 300 cloud-init status --wait >/dev/null 2>&1 || true
    cloud-init clean --logs --seed
    cloud_init=true
fi
rm -f /var/log/waagent.log

agent=false
if command -v waagent >/dev/null; then
    waagent -deprovision+user -force >&2
    agent=true
else
    echo "deprovision: waagent not found; the admin user stays" >&2
fi
rm -f /root/.bash_history
case $PWD in /tmp/labimage-job-*) rm -rf -- "$PWD" ;; esac
sync
printf '{"deprovisioned": true, "cloud_init_cleaned": %s, "agent": %s}\n' "$cloud_init" "$agent"
