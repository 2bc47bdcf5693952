#!/bin/bash
# mount_disk.sh <lun> <mount_point> <fs>
# Find the data disk by LUN, give it GPT + one partition + a file system if (and only if) it is
# blank, grow them to fill a disk made larger since, mount it, and record it in fstab by UUID
# with nofail. Safe to run again.
# Prints one JSON line: {"device", "uuid", "fs", "mount_point", "lun_link"}.
set -euo pipefail

die() { echo "mount_disk: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: mount_disk.sh <lun> <mount_point> <fs>"
lun=$1 mount_point=$2 fs=$3
[[ $lun =~ ^[0-9]{1,2}$ ]] || die "LUN must be a number, got '$lun'"
[[ $mount_point =~ ^/[A-Za-z0-9._/-]*$ && $mount_point != / && $mount_point != *..* ]] \
    || die "mount point must be an absolute path of letters, digits, '.', '_', '-': '$mount_point'"
case $fs in xfs|ext4) ;; *) die "file system must be xfs or ext4, got '$fs'" ;; esac
command -v "mkfs.$fs" >/dev/null || die "mkfs.$fs is not installed"
# A fresh VM answers SSH before cloud-init's last stages are done (its mounts module edits fstab).
if command -v cloud-init >/dev/null; then timeout 300 cloud-init status --wait >/dev/null 2>&1 || true; fi

# Azure's udev rules name data disks by LUN: SCSI sizes (v5 and older) at scsi1/lun<N>
# (WALinuxAgent's rules), NVMe sizes (v6) at data/by-lun/<N> (azure-vm-utils). Older images lack
# them: look for SCSI HCTL *:*:*:<lun> on a host other than the OS disk's.
# Sets disk, and lun_link to the link it was found by (empty when found another way).
SCSI_LINK=/dev/disk/azure/scsi1/lun$lun
NVME_LINK=/dev/disk/azure/data/by-lun/$lun
disk="" lun_link=""
find_disk() {
    local link name hctl
    for link in "$SCSI_LINK" "$NVME_LINK"; do
        if [ -e "$link" ]; then lun_link=$link; disk=$(readlink -f "$link"); return; fi
    done
    while read -r name hctl; do
        if [[ $hctl == *:*:*:"$lun" && ${hctl%%:*} != 0 ]]; then disk=/dev/$name; return; fi
    done < <(lsblk -dn -o NAME,HCTL 2>/dev/null)
    # Last resort for hosts whose data disks sit on SCSI host 0 too (localcloud, some VM sizes).
    while read -r name hctl; do
        if [[ $hctl == *:*:*:"$lun" ]]; then disk=/dev/$name; return; fi
    done < <(lsblk -dn -o NAME,HCTL 2>/dev/null)
}

find_disk || true
[ -n "$disk" ] && [ -b "$disk" ] || die "no data disk found at LUN $lun ($SCSI_LINK, $NVME_LINK, lsblk HCTL)"

# Refuse the disk holding / (or any disk with a mounted partition other than ours).
root_source=$(findmnt -n -o SOURCE / || true)
root_disk=""
if [ -b "$root_source" ]; then
    root_disk=$(lsblk -no PKNAME "$root_source" 2>/dev/null | head -n1 || true)
    [ -n "$root_disk" ] && root_disk=/dev/$root_disk || root_disk=$root_source
fi
[ "$disk" != "$root_disk" ] || die "$disk at LUN $lun is the OS disk; refusing to touch it"
[ -e /dev/disk/azure/root ] && [ "$(readlink -f /dev/disk/azure/root)" = "$disk" ] \
    && die "$disk at LUN $lun is the OS disk; refusing to touch it"

partition_of() {
    if [ -n "$lun_link" ] && [ -e "$lun_link-part1" ]; then readlink -f "$lun_link-part1"; return; fi
    lsblk -ln -o NAME,TYPE "$disk" | awk '$2 == "part" { print "/dev/" $1; exit }'
}

settle() {
    if command -v udevadm >/dev/null && [ -d /run/udev ]; then udevadm settle --timeout=10 || true; fi
}

# Wait until the node of partition $1 is the kernel's current one: partx may re-add a partition
# under a new minor number. Without udev (containers) the node is made here.
current_node() {
    local sys major minor
    sys=/sys/class/block/$(basename "$1")
    for _ in $(seq 1 50); do
        if [ -r "$sys/dev" ]; then
            IFS=: read -r major minor < "$sys/dev"
            if [ -b "$1" ] && [ "$(stat -c '%t:%T' "$1")" = "$(printf '%x:%x' "$major" "$minor")" ]; then
                return 0
            fi
            if [ ! -d /run/udev ]; then rm -f "$1"; mknod "$1" b "$major" "$minor" 2>/dev/null || true; fi
        fi
        sleep 0.2
    done
    return 1
}

fs_on_disk=$(blkid -o value -s TYPE "$disk" 2>/dev/null || true)
part=$(partition_of || true)
if [ -n "$fs_on_disk" ]; then
    # A file system straight on the disk (no partition table): use it as it is.
    device=$disk
elif [ -n "$part" ]; then
    device=$part
elif blkid -p -o value -s PTTYPE "$disk" >/dev/null 2>&1; then
    die "$disk has a partition table but no partition; refusing to guess (inspect it by hand)"
else
    echo "mount_disk: $disk is blank: creating GPT, one partition and $fs" >&2
    parted -s -a optimal "$disk" mklabel gpt mkpart primary "$fs" 0% 100%
    command -v partprobe >/dev/null && { partprobe "$disk" 2>/dev/null || true; }
    settle
    for _ in $(seq 1 50); do
        part=$(partition_of || true)
        if [ -z "$part" ]; then  # not listed yet: its sysfs entry names it
            sys=$(ls -d "/sys/class/block/$(basename "$disk")/$(basename "$disk")"*1 2>/dev/null | head -n1 || true)
            [ -n "$sys" ] && part=/dev/$(basename "$sys")
        fi
        [ -n "$part" ] && break
        sleep 0.2
    done
    # Without udev (containers), current_node makes the node from sysfs.
    [ -n "$part" ] && current_node "$part" || die "partition 1 of $disk did not appear"
    device=$part
fi

# A disk made larger than its image's (a workstation may ask for more): the partition grows to
# fill it here, and the file system once mounted. Nothing happens when they already fill it.
grown=""
if [ "$device" != "$disk" ]; then
    sysfs=/sys/class/block/$(basename "$device")
    disk_sectors=$(blockdev --getsz "$disk")  # 512-byte sectors, as sysfs counts them
    part_end=$(( $(cat "$sysfs/start") + $(cat "$sysfs/size") ))
    # GPT keeps its backup in the last 33 sectors; grow only when more than 2 MiB is free.
    if [ $((disk_sectors - part_end)) -gt 4096 ]; then
        echo "mount_disk: growing $device to fill $disk" >&2
        # Written without asking the kernel to re-read the table (that would drop the
        # partition for a moment); partx then resizes the kernel's view in place.
        if [ "$(blkid -p -o value -s PTTYPE "$disk" 2>/dev/null || true)" = gpt ]; then
            sfdisk --quiet --no-reread --no-tell-kernel --relocate gpt-bak-std "$disk" >&2
        fi
        echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N 1 "$disk" >&2
        partx --update --nr 1 "$disk" >&2
        settle
        current_node "$device" || die "$device did not come back after growing"
        grown=yes
    fi
fi

[ -b "$device" ] || die "$device is gone; refusing to go on"
if [ -z "$(blkid -o value -s TYPE "$device" 2>/dev/null || true)" ]; then
    # Only a partition we just made, or an empty one, is formatted; never one holding data.
    echo "mount_disk: creating $fs on $device" >&2
    "mkfs.$fs" -q "$device" >&2 || "mkfs.$fs" "$device" >&2
    settle
fi
actual_fs=$(blkid -o value -s TYPE "$device")
[ "$actual_fs" = "$fs" ] || die "$device already holds $actual_fs, not $fs; refusing to reformat"
uuid=$(blkid -o value -s UUID "$device")
[ -n "$uuid" ] || die "no UUID on $device"

mkdir -p "$mount_point"
# Replace any fstab line for this mount point, then add ours: never a duplicate.
line="UUID=$uuid $mount_point $fs defaults,nofail 0 2"
tmp=$(mktemp /etc/fstab.labimage.XXXXXX)
awk -v mp="$mount_point" '$0 ~ /^[[:space:]]*#/ || $2 != mp' /etc/fstab > "$tmp"
echo "$line" >> "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" /etc/fstab

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
fi
if ! findmnt -n "$mount_point" >/dev/null; then
    mount "$mount_point"
fi
mounted_uuid=$(findmnt -n -o UUID "$mount_point" || true)
if [ -z "$mounted_uuid" ]; then
    mounted_uuid=$(blkid -o value -s UUID "$(findmnt -n -o SOURCE "$mount_point")" || true)
fi
[ "$mounted_uuid" = "$uuid" ] || die "$mount_point is not mounted from UUID $uuid (found '${mounted_uuid}')"
if [ -n "$grown" ]; then
    case $fs in
        xfs) xfs_growfs "$mount_point" >/dev/null ;;
        ext4) resize2fs "$device" >&2 ;;
    esac
fi

printf '{"device": "%s", "uuid": "%s", "fs": "%s", "mount_point": "%s", "lun_link": "%s"}\n' \
    "$device" "$uuid" "$fs" "$mount_point" "$lun_link"
