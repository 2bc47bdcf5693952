"""Virtual machines: create, read their state, stop, generalize, delete."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.mgmt.compute.models import VirtualMachine

from shared.azure.boundary import arm_call, describe, get_or_none
from shared.azure.clients import AzureClients
from shared.azure.naming import VmNames
from shared.errors import PermanentError
from shared.models import names


@dataclass(frozen=True)
class VmSpec:
    """What a build asks of one VM; the Resource Manager body is rendered from it."""

    names: VmNames
    size: str
    admin_username: str
    ssh_public_key: str
    custom_data: str  # cloud-config text (carries the pinned host key)
    nic_id: str
    tags: dict[str, str]
    data_disk_lun: int
    data_disk_size_gb: int | None  # from an image: None keeps the image's size
    platform_image: dict[str, str] | None = None  # publisher/offer/sku/version
    image_id: str | None = None  # a managed image or gallery image version (relaunch)
    security_type: str = "Standard"  # always sent: Azure's default is moving to TrustedLaunch
    spot: bool = False
    spot_max_price: float | None = None
    os_disk_size_gb: int | None = None


def vm_body(spec: VmSpec, location: str) -> dict[str, Any]:
    """The REST body of a VM whose NIC, IP and disks all go when the VM is deleted."""
    user = spec.admin_username
    storage = "Premium_LRS" if names.premium_storage(spec.size) else "StandardSSD_LRS"
    os_disk: dict[str, Any] = {
        "name": spec.names.os_disk,
        "createOption": "FromImage",
        "deleteOption": "Delete",
        "managedDisk": {"storageAccountType": storage},
    }
    if spec.os_disk_size_gb:
        os_disk["diskSizeGB"] = spec.os_disk_size_gb
    data_disk: dict[str, Any] = {
        "lun": spec.data_disk_lun,
        "name": spec.names.data_disk,
        "deleteOption": "Delete",
        "managedDisk": {"storageAccountType": storage},
    }
    if spec.image_id:
        image_ref: dict[str, Any] = {"id": spec.image_id}
        data_disk["createOption"] = "FromImage"  # the captured data disk, already formatted
        if spec.data_disk_size_gb:  # larger than the image's: the guest grows into it
            data_disk["diskSizeGB"] = spec.data_disk_size_gb
    else:
        image_ref = dict(spec.platform_image or {})
        data_disk["createOption"] = "Empty"
        data_disk["diskSizeGB"] = spec.data_disk_size_gb
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": spec.size},
        "storageProfile": {
            "imageReference": image_ref,
            "osDisk": os_disk,
            "dataDisks": [data_disk],
        },
        "osProfile": {
            "computerName": spec.names.computer_name,
            "adminUsername": user,
            "customData": base64.b64encode(spec.custom_data.encode()).decode(),
            "linuxConfiguration": {
                "disablePasswordAuthentication": True,
                "ssh": {
                    "publicKeys": [
                        {
                            "path": f"/home/{user}/.ssh/authorized_keys",
                            "keyData": spec.ssh_public_key,
                        }
                    ]
                },
            },
        },
        "networkProfile": {
            "networkInterfaces": [
                {"id": spec.nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}
            ]
        },
    }
    properties["securityProfile"] = security_profile(spec.security_type)
    if spec.spot:
        properties["priority"] = "Spot"
        properties["evictionPolicy"] = "Deallocate"
        properties["billingProfile"] = {"maxPrice": spec.spot_max_price or -1}
    return {"location": location, "tags": spec.tags, "properties": properties}


def security_profile(security_type: str) -> dict[str, Any]:
    """securityProfile for Trusted Launch (secure boot and vTPM on) or Standard."""
    if security_type == "TrustedLaunch":
        return {
            "securityType": "TrustedLaunch",
            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
        }
    return {"securityType": "Standard"}


def begin_create_vm(azure: AzureClients, spec: VmSpec) -> LROPoller[VirtualMachine]:
    """Start creating the VM; its operation's poller (wait on it, or poll the VM's state)."""
    s = azure.settings
    what = f"create VM {spec.names.vm}"
    with arm_call(what):
        try:
            return azure.compute.virtual_machines.begin_create_or_update(
                s.resource_group,
                spec.names.vm,
                VirtualMachine(vm_body(spec, s.location)),
            )
        except ResourceNotFoundError as exc:
            # What the VM is made from is gone (an image deleted outside the build): say so.
            raise PermanentError(f"{what}: {describe(exc)}") from exc


@dataclass(frozen=True)
class VmState:
    exists: bool
    provisioning: str | None = None  # Succeeded, Creating, Failed...
    power: str | None = None  # running, stopped, deallocated, starting...
    generalized: bool = False
    hyper_v_generation: str | None = None  # V1 or V2, from the instance view
    failure: str | None = None  # why provisioning failed, as Azure says it ("<code>: <message>")

    @property
    def running(self) -> bool:
        return self.provisioning == "Succeeded" and self.power == "running"


def vm_state(azure: AzureClients, name: str, group: str | None = None) -> VmState:
    group = group or azure.settings.resource_group
    view = get_or_none(
        f"read instance view of VM {name}",
        lambda: azure.compute.virtual_machines.instance_view(group, name),
    )
    if view is None:
        return VmState(exists=False)
    provisioning = None
    power = None
    generalized = False
    failure = None
    for status in view.statuses or []:
        code = status.code or ""
        if code.startswith("ProvisioningState/"):
            # "ProvisioningState/failed/OSProvisioningTimedOut": the state, then why.
            _, state, *why = code.split("/", 2)
            provisioning = state.capitalize()
            if why:
                failure = why[0] + (f": {status.message}" if status.message else "")
        elif code.startswith("PowerState/"):
            power = code.split("/", 1)[1]
        elif code == "OSState/generalized":
            generalized = True
    generation = view.hyper_v_generation
    generation = getattr(generation, "value", generation)  # the SDK answers an enum member
    return VmState(
        True, provisioning, power, generalized, str(generation) if generation else None, failure
    )


def disk_controller(azure: AzureClients, name: str) -> str | None:
    """storageProfile.diskControllerType of a VM (SCSI or NVMe), None when it is gone."""
    group = azure.settings.resource_group
    vm = get_or_none(f"read VM {name}", lambda: azure.compute.virtual_machines.get(group, name))
    if vm is None or vm.storage_profile is None:
        return None
    controller = vm.storage_profile.disk_controller_type
    return str(getattr(controller, "value", controller)) if controller else None


def image_reference(azure: AzureClients, name: str) -> dict[str, str | None] | None:
    """storageProfile.imageReference of a VM as Azure answers it, with exactVersion (the
    version `latest` resolved to at creation); None when the VM is gone."""
    group = azure.settings.resource_group
    vm = get_or_none(f"read VM {name}", lambda: azure.compute.virtual_machines.get(group, name))
    if vm is None or vm.storage_profile is None or vm.storage_profile.image_reference is None:
        return None
    ref = vm.storage_profile.image_reference
    return {
        "publisher": ref.publisher,
        "offer": ref.offer,
        "sku": ref.sku,
        "version": ref.version,
        "exact_version": ref.exact_version,
        "id": ref.id,
    }


def begin_deallocate(azure: AzureClients, name: str, group: str | None = None) -> LROPoller[None]:
    with arm_call(f"deallocate VM {name}"):
        return azure.compute.virtual_machines.begin_deallocate(
            group or azure.settings.resource_group, name
        )


def generalize(azure: AzureClients, name: str) -> None:
    with arm_call(f"generalize VM {name}"):
        azure.compute.virtual_machines.generalize(azure.settings.resource_group, name)


def begin_delete_vm(azure: AzureClients, name: str) -> LROPoller[None]:
    with arm_call(f"delete VM {name}"):
        return azure.compute.virtual_machines.begin_delete(azure.settings.resource_group, name)


def vm_id(azure: AzureClients, name: str) -> str:
    s = azure.settings
    return (
        f"/subscriptions/{s.subscription_id}/resourceGroups/{s.resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{name}"
    )


def creation_failed(name: str, state: VmState) -> str:
    """The sentence for a VM whose provisioning failed, with Azure's reason when it gave one."""
    why = f": {state.failure}" if state.failure else ""
    return f"Azure could not create VM {name} (provisioning failed{why})"
