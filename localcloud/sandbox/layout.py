"""Names and paths of everything one state folder creates, derived from the folder alone.

Every host object (network namespace, veth, nft table) carries a tag computed from the state
folder's absolute path, so a teardown after a crash finds exactly what this folder created and
nothing that belongs to another localcloud or to the host.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    state_dir: Path
    subnet: ipaddress.IPv4Network

    @classmethod
    def of(cls, state_dir: Path, subnet: str) -> Layout:
        net = ipaddress.IPv4Network(subnet)
        if net.prefixlen > 29:
            raise ValueError(f"subnet {subnet} is too small for VM slots")
        return cls(state_dir.resolve(), net)

    @property
    def tag(self) -> str:
        """Six hex digits unique to this state folder (hash of its absolute path)."""
        return hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:6]

    # --- host names -------------------------------------------------------------------------
    @property
    def netns_prefix(self) -> str:
        return f"lcvm-{self.tag}-"

    def netns(self, slot: int) -> str:
        return f"{self.netns_prefix}{slot}"

    @property
    def veth_prefix(self) -> str:
        return f"lc{self.tag}"

    def veth_host(self, slot: int) -> str:
        return f"{self.veth_prefix}h{slot}"  # <= 14 characters for slot < 100000

    def veth_guest(self, slot: int) -> str:
        return f"{self.veth_prefix}g{slot}"

    @property
    def nft_table(self) -> str:
        return f"labimage_lc_{self.tag}"

    # --- addresses --------------------------------------------------------------------------
    @property
    def slot_count(self) -> int:
        return self.subnet.num_addresses // 4

    def host_address(self, slot: int) -> str:
        return str(self.subnet.network_address + 4 * slot + 1)

    def guest_address(self, slot: int) -> str:
        return str(self.subnet.network_address + 4 * slot + 2)

    # --- files in the state folder ---------------------------------------------------------
    @property
    def lock_file(self) -> Path:
        return self.state_dir / "sandbox.lock"

    @property
    def slot_counter(self) -> Path:
        return self.state_dir / "next-slot"

    @property
    def ip_forward_record(self) -> Path:
        return self.state_dir / "ip_forward.previous"

    @property
    def vms_dir(self) -> Path:
        return self.state_dir / "vms"

    def vm_dir(self, vm_key: str) -> Path:
        return self.vms_dir / safe_key(vm_key)


def safe_key(vm_key: str) -> str:
    """A file name for a VM key (keys are ARM ids with slashes): readable prefix + hash."""
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in vm_key)[-48:]
    digest = hashlib.sha256(vm_key.encode()).hexdigest()[:12]
    return f"{readable.strip('_')}-{digest}"
