"""Every resource type the emulator serves, by lower-case full type name."""

from __future__ import annotations

from localcloud.arm.kinds.base import Kind
from localcloud.arm.kinds.capture import (
    GalleryImageKind,
    GalleryKind,
    GalleryVersionKind,
    ImageKind,
)
from localcloud.arm.kinds.disks import DiskKind
from localcloud.arm.kinds.network import (
    NetworkInterfaceKind,
    NetworkSecurityGroupKind,
    PublicIpKind,
    SubnetKind,
    VirtualNetworkKind,
)
from localcloud.arm.kinds.vms import VirtualMachineKind

KINDS: dict[str, Kind] = {
    kind.type_name.lower(): kind
    for kind in (
        VirtualNetworkKind(),
        SubnetKind(),
        NetworkSecurityGroupKind(),
        PublicIpKind(),
        NetworkInterfaceKind(),
        VirtualMachineKind(),
        DiskKind(),
        ImageKind(),
        GalleryKind(),
        GalleryImageKind(),
        GalleryVersionKind(),
    )
}

# Deleting a resource group removes its contents in this order (users before what they use).
GROUP_DELETE_ORDER = [
    "microsoft.compute/virtualmachines",
    "microsoft.compute/galleries/images/versions",
    "microsoft.compute/galleries/images",
    "microsoft.compute/galleries",
    "microsoft.compute/images",
    "microsoft.compute/disks",
    "microsoft.network/networkinterfaces",
    "microsoft.network/publicipaddresses",
    "microsoft.network/virtualnetworks",
    "microsoft.network/networksecuritygroups",
]
