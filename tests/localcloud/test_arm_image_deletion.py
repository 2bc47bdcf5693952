# The compute models' overloads name only `properties=...`; at run time the SDK also takes the
# flattened keywords used here (as its own samples do), which mypy cannot see.
# mypy: disable-error-code="call-overload,arg-type,union-attr"
"""Deleting images as Azure allows it: a managed image may go once the VMs made from it are
provisioned (their disks are their own), not while one is still being provisioned; a gallery
image definition not while it holds versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import models as cm

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.testing import emulator_in_thread
from tests.localcloud.test_arm_sdk import (
    LOCATION,
    RG,
    Azure,
    make_network,
    make_network_nic_only,
    vm_parameters,
)


class HeldFirstBoot(MemoryRunner):
    """Holds a VM's first boot (its OS disk being made) until `release` is set, so the VM
    stays in provisioningState Creating for as long as a test needs."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.release = threading.Event()

    def new_os_disk(self, path: Path, source: Path | None = None) -> None:
        if self.hold.is_set():
            self.release.wait(30)
        super().new_os_disk(path, source)


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HeldFirstBoot, Azure]]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    runner = HeldFirstBoot()
    with emulator_in_thread(tmp_path, runner, retry_after=0) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        azure = Azure(running, ManagedIdentityCredential())
        azure.resource.resource_groups.create_or_update(RG, {"location": LOCATION})
        try:
            yield runner, azure
        finally:
            runner.release.set()


def captured_image(azure: Azure) -> cm.Image:
    nic = make_network(azure)
    vm = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b1-vm", vm_parameters(nic)
    ).result()
    azure.compute.virtual_machines.begin_deallocate(RG, "b1-vm").result()
    azure.compute.virtual_machines.generalize(RG, "b1-vm")
    return azure.compute.images.begin_create_or_update(
        RG,
        "b1-image",
        cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id)),
    ).result()


def test_an_image_cannot_be_deleted_while_a_vm_is_provisioned_from_it_but_can_after(
    cloud: Any,
) -> None:
    runner, azure = cloud
    image = captured_image(azure)
    runner.hold.set()
    poller = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b2-vm", vm_parameters(make_network_nic_only(azure, "b2"), "b2", image_id=image.id)
    )
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.images.begin_delete(RG, "b1-image").result()
    assert refused.value.status_code == 409
    assert refused.value.error.code == "OperationNotAllowed"
    assert "'b2-vm' are being provisioned using the Image 'b1-image'" in str(refused.value)

    runner.release.set()
    assert poller.result().provisioning_state == "Succeeded"
    azure.compute.images.begin_delete(RG, "b1-image").result()  # the VM holds no claim now
    with pytest.raises(ResourceNotFoundError):
        azure.compute.images.get(RG, "b1-image")
    assert azure.compute.virtual_machines.get(RG, "b2-vm").provisioning_state == "Succeeded"


def test_a_gallery_definition_with_versions_cannot_be_deleted(cloud: Any) -> None:
    _, azure = cloud
    image = captured_image(azure)
    azure.compute.galleries.begin_create_or_update(
        RG, "labgallery", cm.Gallery(location=LOCATION)
    ).result()
    azure.compute.gallery_images.begin_create_or_update(
        RG,
        "labgallery",
        "jupyter",
        cm.GalleryImage(
            location=LOCATION,
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V2",
            identifier=cm.GalleryImageIdentifier(publisher="lab", offer="jupyter", sku="2404"),
        ),
    ).result()
    azure.compute.gallery_image_versions.begin_create_or_update(
        RG,
        "labgallery",
        "jupyter",
        "1.0.0",
        cm.GalleryImageVersion(
            location=LOCATION,
            storage_profile=cm.GalleryImageVersionStorageProfile(
                source=cm.GalleryArtifactVersionFullSource(id=image.id)
            ),
        ),
    ).result()
    with pytest.raises(HttpResponseError) as refused:
        azure.compute.gallery_images.begin_delete(RG, "labgallery", "jupyter").result()
    assert refused.value.status_code == 409
    assert "before nested resources are deleted" in str(refused.value)

    azure.compute.gallery_image_versions.begin_delete(RG, "labgallery", "jupyter", "1.0.0").result()
    azure.compute.gallery_images.begin_delete(RG, "labgallery", "jupyter").result()
    with pytest.raises(ResourceNotFoundError):
        azure.compute.gallery_images.get(RG, "labgallery", "jupyter")
