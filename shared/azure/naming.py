"""Every Azure name a build uses derives from its id, so a retried step finds what it made."""

from __future__ import annotations

from dataclasses import dataclass

BUILD_TAG = "labimage-build"
ROLE_TAG = "labimage-role"
AUTOSTOP_TAG = "labimage-autostop"
WORKSTATION_TAG = "labimage-workstation"


@dataclass(frozen=True)
class VmNames:
    vm: str
    nic: str
    public_ip: str
    os_disk: str
    data_disk: str
    computer_name: str


@dataclass(frozen=True)
class BuildNames:
    build_id: str

    @property
    def prefix(self) -> str:
        return f"labimage-{self.build_id}"

    @property
    def vnet(self) -> str:
        return f"{self.prefix}-vnet"

    @property
    def subnet(self) -> str:
        return "default"

    @property
    def nsg(self) -> str:
        return f"{self.prefix}-nsg"

    def vm(self, role: str) -> VmNames:
        """Names of one VM of the build: role is 'build' or 'relaunch'."""
        base = f"{self.prefix}-{role}"
        return VmNames(
            vm=base,
            nic=f"{base}-nic",
            public_ip=f"{base}-ip",
            os_disk=f"{base}-osdisk",
            data_disk=f"{base}-datadisk",
            computer_name=f"{self.build_id}-{role}",
        )


def resource_id(subscription: str, group: str, provider_type: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{provider_type}/{name}"
