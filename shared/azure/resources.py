"""Reading and deleting a build's resources by id, whatever their type, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.azure.boundary import arm_call, get_or_none
from shared.azure.clients import AzureClients

# Delete in this order: a VM first (its NIC, IP and disks go with it by delete option), then
# what it used, then the network, whose subnet refers to the NSG, and images last.
DELETE_ORDER: tuple[str, ...] = (
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Compute/disks",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Compute/galleries/images/versions",
    "Microsoft.Compute/images",
)


def _parts(resource_id: str) -> tuple[str, list[str]]:
    """(resource group, names after the provider type) of an ARM resource id."""
    segments = resource_id.strip("/").split("/")
    group = segments[3]
    names = segments[7::2]
    return group, names


def _operations(azure: AzureClients, type_: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    c, n = azure.compute, azure.network
    table: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "Microsoft.Compute/virtualMachines": (
            c.virtual_machines.get,
            c.virtual_machines.begin_delete,
        ),
        "Microsoft.Compute/disks": (c.disks.get, c.disks.begin_delete),
        "Microsoft.Compute/images": (c.images.get, c.images.begin_delete),
        "Microsoft.Compute/galleries/images/versions": (
            c.gallery_image_versions.get,
            c.gallery_image_versions.begin_delete,
        ),
        "Microsoft.Network/networkInterfaces": (
            n.network_interfaces.get,
            n.network_interfaces.begin_delete,
        ),
        "Microsoft.Network/publicIPAddresses": (
            n.public_ip_addresses.get,
            n.public_ip_addresses.begin_delete,
        ),
        "Microsoft.Network/virtualNetworks": (
            n.virtual_networks.get,
            n.virtual_networks.begin_delete,
        ),
        "Microsoft.Network/networkSecurityGroups": (
            n.network_security_groups.get,
            n.network_security_groups.begin_delete,
        ),
    }
    return table[type_]


def exists(azure: AzureClients, type_: str, resource_id: str) -> bool:
    get, _ = _operations(azure, type_)
    group, names = _parts(resource_id)
    return get_or_none(f"read {resource_id}", lambda: get(group, *names)) is not None


def begin_delete(azure: AzureClients, type_: str, resource_id: str) -> Any:
    """Ask Resource Manager to delete; the operation's poller (the caller may wait on it, or
    check later whether the resource is gone)."""
    _, delete = _operations(azure, type_)
    group, names = _parts(resource_id)
    with arm_call(f"delete {resource_id}"):
        return delete(group, *names)
