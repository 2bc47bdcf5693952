#!/bin/bash
# check_mount.sh <mount_point>
# After a relaunch: is the data disk mounted, from which device and UUID, and is it in fstab by
# that UUID? Prints {"mounted", "source", "uuid", "fstype", "in_fstab_by_uuid"}; exit 0 either way.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: check_mount.sh <mount_point>" >&2; exit 2; }
mount_point=$1
[[ $mount_point =~ ^/[A-Za-z0-9._/-]*$ ]] || { echo "check_mount: bad mount point" >&2; exit 2; }

json_str() { if [ -n "$1" ]; then printf '"%s"' "$1"; else printf 'null'; fi; }

if findmnt -n --mountpoint "$mount_point" >/dev/null 2>&1; then
    mounted=true
    source=$(findmnt -n -o SOURCE --mountpoint "$mount_point")
    fstype=$(findmnt -n -o FSTYPE --mountpoint "$mount_point")
    uuid=$(findmnt -n -o UUID --mountpoint "$mount_point" || true)
    [ -n "$uuid" ] || uuid=$(blkid -o value -s UUID "$source" 2>/dev/null || true)
else
    mounted=false source="" fstype="" uuid=""
fi
in_fstab=false
if [ -n "$uuid" ] && awk -v u="UUID=$uuid" -v mp="$mount_point" \
    '$1 == u && $2 == mp { found = 1 } END { exit !found }' /etc/fstab; then
    in_fstab=true
fi
printf '{"mounted": %s, "source": %s, "uuid": %s, "fstype": %s, "in_fstab_by_uuid": %s}\n' \
    "$mounted" "$(json_str "$source")" "$(json_str "$uuid")" "$(json_str "$fstype")" "$in_fstab"
