"""A workstation's Azure resources: names, tags, bring-up, start, stop, the SSH target.

Names derive from the workstation id exactly as a build's derive from its id (BuildNames), so a
retried step finds what it made; the network, IP, NIC and VM calls are the builds' own.
"""

from __future__ import annotations

from shared.azure import network, vms
from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients
from shared.azure.naming import (
    AUTOSTOP_TAG,
    ROLE_TAG,
    WORKSTATION_TAG,
    BuildNames,
    VmNames,
    resource_id,
)
from shared.costguard.idle import IDLE_TAG
from shared.settings import Settings
from shared.ssh.keys import KeyStore, ensure_build_keys, host_key_cloud_config
from shared.ssh.runner import SshTarget
from shared.workstations.record import Workstation

ROLE = "workstation"


def names_of(ws_id: str) -> tuple[BuildNames, VmNames]:
    names = BuildNames(ws_id)
    return names, names.vm("ws")


def tags_of(ws: Workstation) -> dict[str, str]:
    """Every resource of the workstation carries these; the cost guards read the last two."""
    tags = {
        "owner": ws.owner,
        "project": ws.spec.project,
        WORKSTATION_TAG: ws.id,
        ROLE_TAG: ROLE,
        AUTOSTOP_TAG: ws.spec.autostop,
    }
    if ws.spec.idle_minutes is not None:
        tags[IDLE_TAG] = str(ws.spec.idle_minutes)
    return tags


def resource_ids(settings: Settings, ws_id: str) -> list[tuple[str, str]]:
    """(type, id) of everything the workstation may have, in the order they are deleted."""
    names, vm = names_of(ws_id)
    sub, group = settings.subscription_id, settings.resource_group
    kinds = (
        ("Microsoft.Compute/virtualMachines", vm.vm),
        ("Microsoft.Network/networkInterfaces", vm.nic),
        ("Microsoft.Network/publicIPAddresses", vm.public_ip),
        ("Microsoft.Compute/disks", vm.os_disk),
        ("Microsoft.Compute/disks", vm.data_disk),
        ("Microsoft.Network/virtualNetworks", names.vnet),
        ("Microsoft.Network/networkSecurityGroups", names.nsg),
    )
    return [(kind, resource_id(sub, group, kind, name)) for kind, name in kinds]


def vm_spec(ws: Workstation, keys: KeyStore, nic_id: str) -> vms.VmSpec:
    client, host = ensure_build_keys(keys, ws.id)
    _, vm = names_of(ws.id)
    return vms.VmSpec(
        names=vm,
        size=ws.spec.size,
        admin_username=ws.spec.admin_username,
        ssh_public_key=client.public_line,
        custom_data=host_key_cloud_config(host.private_openssh, host.public_line),
        nic_id=nic_id,
        tags=tags_of(ws),
        data_disk_lun=ws.spec.data_disk_lun,
        data_disk_size_gb=ws.spec.data_disk_gb,  # None: the image's size
        image_id=ws.spec.image_id,
        security_type=ws.spec.security_type,
    )


def ssh_target(ws: Workstation, keys: KeyStore, address: str) -> SshTarget:
    """Log in as the workstation's user with its key; accept only its pinned host key."""
    return SshTarget(
        host=address,
        port=22,
        username=ws.spec.admin_username,
        client_private_key=keys.load(ws.id, "client").private_openssh,
        host_public_key=keys.load(ws.id, "host").public_line,
    )


def address_of(azure: AzureClients, ws_id: str) -> str | None:
    return network.public_ip_address(azure, names_of(ws_id)[1])


def begin_start(azure: AzureClients, ws_id: str) -> None:
    """Start a deallocated VM; the caller polls its state instead of waiting here."""
    name = names_of(ws_id)[1].vm
    with arm_call(f"start VM {name}"):
        azure.compute.virtual_machines.begin_start(azure.settings.resource_group, name)


def power_of(azure: AzureClients, ws_id: str) -> vms.VmState:
    return vms.vm_state(azure, names_of(ws_id)[1].vm)


def begin_deallocate(azure: AzureClients, ws_id: str) -> None:
    vms.begin_deallocate(azure, names_of(ws_id)[1].vm)
