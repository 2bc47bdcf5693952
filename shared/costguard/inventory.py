"""Reading the VMs in the auto-stop scope: one paged list call per resource group, power included.

Listing with the instance view inline costs one Resource Manager call per page (not one per VM),
which keeps a scan of thousands of VMs inside ARM's read limits. Groups are listed concurrently,
bounded by `concurrency`. Throttled calls are retried by azure-core's retry policy, which
honours Retry-After; nothing here retries on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import VirtualMachine

from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients

WHOLE_SUBSCRIPTION = "*"


@dataclass(frozen=True)
class VmInfo:
    id: str
    name: str
    group: str
    tags: dict[str, str]
    size: str
    power: str | None  # running, deallocated, stopped...; None when not reported

    @property
    def owner(self) -> str:
        return self.tags.get("owner", "")

    @property
    def project(self) -> str:
        return self.tags.get("project", "")


@dataclass
class Inventory:
    vms: list[VmInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # groups that could not be listed


def group_of(resource_id: str) -> str:
    return resource_id.strip("/").split("/")[3]


def vm_info(vm: VirtualMachine) -> VmInfo:
    power = None
    view = vm.instance_view
    for status in (view.statuses if view else None) or []:
        code = status.code or ""
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1]
    profile = vm.hardware_profile
    return VmInfo(
        id=str(vm.id),
        name=str(vm.name),
        group=group_of(str(vm.id)),
        tags=dict(vm.tags or {}),
        # Known sizes come back as an enum whose str() is its Python name, not the size.
        size=str(getattr(profile.vm_size, "value", profile.vm_size))
        if profile and profile.vm_size
        else "",
        power=power,
    )


def _list_group(azure: AzureClients, group: str) -> list[VmInfo]:
    with arm_call(f"list VMs of {group}"):
        if group == WHOLE_SUBSCRIPTION:
            pages: Iterable[VirtualMachine] = azure.compute.virtual_machines.list_all(
                status_only="true"
            )
        else:
            pages = azure.compute.virtual_machines.list(group, expand="instanceView")
        try:
            return [vm_info(vm) for vm in pages]
        except ResourceNotFoundError:
            return []  # the group does not exist (yet): nothing to stop in it


def scan_scope(azure: AzureClients, groups: Iterable[str], concurrency: int = 4) -> Inventory:
    """Every VM of the scope with its tags, size and power state. A group that fails is named
    in `problems`; the others are still returned."""
    inventory = Inventory()
    groups = list(dict.fromkeys(groups))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(groups) or 1))) as pool:
        futures = {group: pool.submit(_list_group, azure, group) for group in groups}
        for group, future in futures.items():
            try:
                inventory.vms.extend(future.result())
            except Exception as exc:  # one group's failure never hides the others' VMs
                inventory.problems.append(f"could not list VMs of {group}: {exc}")
    unique: dict[str, VmInfo] = {}
    for vm in inventory.vms:
        unique.setdefault(vm.id.lower(), vm)  # "*" and a named group can both list a VM
    inventory.vms = list(unique.values())
    return inventory


def read_vm(azure: AzureClients, group: str, name: str) -> VmInfo | None:
    """One VM with its power state; None when it does not exist."""
    with arm_call(f"read VM {group}/{name}"):
        try:
            vm = azure.compute.virtual_machines.get(group, name, expand="instanceView")
        except ResourceNotFoundError:
            return None
    return vm_info(vm)


def iter_tagged(inventory: Inventory, tag: str) -> Iterator[VmInfo]:
    return (vm for vm in inventory.vms if tag in vm.tags)
