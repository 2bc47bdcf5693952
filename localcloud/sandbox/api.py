"""The contract between the Resource Manager emulator and whatever runs its VMs.

The emulator calls these methods; `localcloud.sandbox.host.SandboxHost` runs real Linux sandboxes,
`RecordsOnly` runs nothing (for scale tests with thousands of VMs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

DEFAULT_BASE_IMAGE = "canonical:ubuntu-24_04-lts:server"


@dataclass(frozen=True)
class GuestConfig:
    """What Azure hands a VM at first boot (osProfile and customData)."""

    hostname: str  # osProfile.computerName
    admin_username: str  # osProfile.adminUsername
    authorized_keys: list[str]  # osProfile.linuxConfiguration.ssh.publicKeys[].keyData
    custom_data: bytes | None = None  # base64-decoded osProfile.customData (cloud-config)
    # cloud-init's instance id (Azure's is the vmId): a new one makes it provision again
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class DataDisk:
    lun: int
    path: Path  # the sparse file that is the disk


@dataclass(frozen=True)
class BootSpec:
    vm_key: str  # unique, stable per VM resource (the emulator derives it from the resource id)
    os_disk: Path  # a directory: the OS layer (overlay upper) of this VM
    data_disks: list[DataDisk] = field(default_factory=list)
    guest: GuestConfig | None = None  # only at a VM's first boot
    # storageProfile.diskControllerType: where the guest finds its data disks by LUN.
    disk_controller: str = "SCSI"
    base_image: str = DEFAULT_BASE_IMAGE  # publisher:offer:sku of the image below the OS disk
    first_boot_lock_s: float | None = None  # None: the runner's default


class VmRunner(Protocol):
    def prepare(self) -> None:
        """Idempotent host set-up (NAT table, forwarding). Called once at emulator start."""

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        """Create an OS layer at `path`: empty (platform image) or a copy of `source` (an image)."""

    def new_data_disk(self, path: Path, size_gb: int, source: Path | None = None) -> None:
        """Create a sparse disk file: empty and unformatted, or a sparse copy of `source`."""

    def copy_os_disk(self, source: Path, dest: Path) -> None:
        """Freeze an OS layer into an image (the VM is not running)."""

    def copy_data_disk(self, source: Path, dest: Path) -> None:
        """Sparse copy of a data disk file (the VM is not running)."""

    def boot(self, spec: BootSpec) -> str:
        """Start the VM and return its address once its SSH server accepts connections."""

    def shutdown(self, vm_key: str) -> None:
        """Stop the VM (deallocate or power off): processes, address, loop devices. Idempotent."""

    def is_running(self, vm_key: str) -> bool:
        """True while the VM's processes are alive (False after a crash or a kill from outside)."""

    def delete_disk(self, path: Path) -> None:
        """Remove an OS layer directory or a data disk file. Idempotent."""

    def teardown_all(self) -> None:
        """Remove every sandbox, namespace, loop device, mount and NAT rule of this state folder."""
