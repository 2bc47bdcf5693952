# mypy: disable-error-code="call-overload,arg-type,union-attr"
"""Disk sizes of a VM made from an image, as Azure takes them: a disk may be made larger than
the image's, never smaller. Azure refuses a smaller one with 409 OperationNotAllowed, "The
specified disk size N GB is smaller than the size of the corresponding disk in the VM image:
M GB" (its answer quoted in Azure/azure-sdk-for-python#23051 and skypilot-org/skypilot#2219)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as cm

from tests.localcloud.test_arm_image_deletion import captured_image, cloud  # noqa: F401
from tests.localcloud.test_arm_sdk import (
    LOCATION,
    RG,
    make_network,
    make_network_nic_only,
    vm_parameters,
)


def from_image(
    image_id: str, nic: str, os_gb: int | None, data_gb: int | None
) -> cm.VirtualMachine:
    params = vm_parameters(nic, "b2", image_id=image_id)
    params.storage_profile.os_disk.disk_size_gb = os_gb
    if data_gb is not None:
        params.storage_profile.data_disks = [
            cm.DataDisk(lun=0, name="b2-data", create_option="FromImage", disk_size_gb=data_gb)
        ]
    return params


@pytest.mark.parametrize(
    ("os_gb", "data_gb", "message"),
    [
        (
            None,
            128,
            "The specified disk size 128 GB is smaller than the size of the "
            "corresponding disk in the VM image: 256 GB",
        ),
        (
            10,
            None,
            "The specified disk size 10 GB is smaller than the size of the "
            "corresponding disk in the VM image: 30 GB",
        ),
    ],
)
def test_a_disk_smaller_than_the_images_is_refused_and_nothing_is_made(
    cloud: Any,  # noqa: F811 (the imported fixture)
    os_gb: int | None,
    data_gb: int | None,
    message: str,
) -> None:
    _, azure = cloud
    image = captured_image(azure)
    nic = make_network_nic_only(azure, "b2")
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.virtual_machines.begin_create_or_update(
            RG, "b2-vm", from_image(image.id, nic, os_gb, data_gb)
        ).result()
    assert refused.value.status_code == 409
    assert refused.value.error.code == "OperationNotAllowed"
    assert message in str(refused.value)
    with pytest.raises(ResourceNotFoundError):
        azure.compute.virtual_machines.get(RG, "b2-vm")
    assert not [d.name for d in azure.compute.disks.list_by_resource_group(RG) if "b2" in d.name]


def test_a_disk_larger_than_the_images_is_made_at_the_size_asked(cloud: Any) -> None:  # noqa: F811
    _, azure = cloud
    image = captured_image(azure)
    nic = make_network_nic_only(azure, "b2")
    vm = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b2-vm", from_image(image.id, nic, 64, 512)
    ).result()
    assert vm.storage_profile.os_disk.disk_size_gb == 64
    assert vm.storage_profile.data_disks[0].disk_size_gb == 512
    assert azure.compute.disks.get(RG, "b2-data").disk_size_gb == 512


def test_a_managed_image_does_not_start_an_nvme_only_size_even_from_an_nvme_vm(
    cloud: Any,  # noqa: F811 (the imported fixture)
) -> None:
    """A managed image has no DiskControllerTypes (ImageProperties in image.json, 2025-04-01),
    and "if you use an unmarked image, a SCSI-based VM is created" (nvme-overview.md): so a v6
    size, NVMe only, cannot boot from one, whatever controller its source VM used."""
    _, azure = cloud
    params = vm_parameters(make_network(azure), "b3")
    params.hardware_profile.vm_size = "Standard_D2s_v6"  # the source VM runs on NVMe
    vm = azure.compute.virtual_machines.begin_create_or_update(RG, "b3-vm", params).result()
    assert vm.storage_profile.disk_controller_type == "NVMe"
    azure.compute.virtual_machines.begin_deallocate(RG, "b3-vm").result()
    azure.compute.virtual_machines.generalize(RG, "b3-vm")
    image = azure.compute.images.begin_create_or_update(
        RG, "b3-image", cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id))
    ).result()
    relaunch = vm_parameters(make_network_nic_only(azure, "b4"), "b4", image_id=image.id)
    relaunch.hardware_profile.vm_size = "Standard_D2s_v6"
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.virtual_machines.begin_create_or_update(RG, "b4-vm", relaunch).result()
    assert refused.value.status_code == 400
    assert "cannot boot with OS image or disk" in str(refused.value)
    relaunch.hardware_profile.vm_size = "Standard_D2s_v5"  # SCSI: the way that works
    made = azure.compute.virtual_machines.begin_create_or_update(RG, "b4-vm", relaunch).result()
    assert made.storage_profile.disk_controller_type == "SCSI"


@pytest.mark.parametrize("size", ["Standard_D2_v5", "Standard_A2_v2"])
def test_premium_disks_on_a_size_without_premium_storage_are_refused(
    cloud: Any,  # noqa: F811 (the imported fixture)
    size: str,
) -> None:
    """Only sizes whose name says `s` (premium storage capable, Azure's VM naming
    conventions) take Premium_LRS disks; Azure answers others 400 InvalidParameter
    (MicrosoftLearning/20533-ImplementingMicrosoftAzureInfrastructureSolutions#345)."""
    _, azure = cloud
    params = vm_parameters(make_network(azure), "b5")
    params.hardware_profile.vm_size = size
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.virtual_machines.begin_create_or_update(RG, "b5-vm", params).result()
    assert refused.value.status_code == 400
    assert refused.value.error.code == "InvalidParameter"
    assert f"'Premium_LRS' is not supported for VM size '{size}'" in str(refused.value)
    for disk in [params.storage_profile.os_disk, *params.storage_profile.data_disks]:
        disk.managed_disk = cm.ManagedDiskParameters(storage_account_type="StandardSSD_LRS")
    made = azure.compute.virtual_machines.begin_create_or_update(RG, "b5-vm", params).result()
    assert made.storage_profile.os_disk.managed_disk.storage_account_type == "StandardSSD_LRS"


@pytest.mark.parametrize(
    ("tags", "code"),
    [
        ({f"t{i}": "v" for i in range(51)}, "InvalidParameter"),
        ({"a/b": "v"}, "InvalidTagNameCharacters"),
        ({"n" * 513: "v"}, "InvalidTagNameLength"),
        ({"n": "v" * 257}, "InvalidTagValueLength"),
    ],
)
def test_tags_beyond_azures_limits_are_refused_on_a_resource_put(
    cloud: Any,  # noqa: F811 (the imported fixture)
    tags: dict[str, str],
    code: str,
) -> None:
    """At most 50 tags, names up to 512 characters without < > % & \\ ? /, values up to 256
    (ARM tag-resources.md, "Limitations"), on any resource's PUT as on the Tags API."""
    _, azure = cloud
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.disks.begin_create_or_update(
            RG,
            "tagged",
            cm.Disk(
                location=LOCATION,
                tags=tags,
                creation_data=cm.CreationData(create_option="Empty"),
                disk_size_gb=1,
            ),
        ).result()
    assert refused.value.status_code == 400
    assert refused.value.error.code == code
