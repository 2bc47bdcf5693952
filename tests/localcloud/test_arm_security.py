# mypy: disable-error-code="call-overload,arg-type,union-attr"
"""Security type, hypervisor generation and disk controller: what the emulator answers through the
real azure-mgmt-compute client, and what it refuses with Azure's status and code
(../shared/azure-rest/RULES.md sections 1.1, 1.7 and 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
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

TL = cm.SecurityProfile(
    security_type="TrustedLaunch",
    uefi_settings=cm.UefiSettings(secure_boot_enabled=True, v_tpm_enabled=True),
)


def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[Azure]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with emulator_in_thread(tmp_path, MemoryRunner(), retry_after=0, page_size=100, **settings) as (
        running,
        _,
    ):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        azure = Azure(running, ManagedIdentityCredential())
        azure.resource.resource_groups.create_or_update(RG, {"location": LOCATION})
        yield azure


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    yield from start(tmp_path, monkeypatch)


@pytest.fixture
def azure_tl_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    yield from start(tmp_path, monkeypatch, default_security_type="TrustedLaunch")


def create_vm(azure: Azure, name: str, nic: str, **changes: Any) -> cm.VirtualMachine:
    params = vm_parameters(nic, name, image_id=changes.pop("image_id", None))
    for key, value in changes.items():
        if key == "size":
            params.hardware_profile.vm_size = value
        elif key == "controller":
            params.storage_profile.disk_controller_type = value
        elif key == "sku":
            params.storage_profile.image_reference.sku = value
        else:
            setattr(params, key, value)
    return azure.compute.virtual_machines.begin_create_or_update(RG, f"{name}-vm", params).result()


def refused(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as info:
        call()
    return info.value


def captured_vm(azure: Azure, name: str, nic: str, **changes: Any) -> cm.VirtualMachine:
    vm = create_vm(azure, name, nic, **changes)
    azure.compute.virtual_machines.begin_deallocate(RG, f"{name}-vm").result()
    azure.compute.virtual_machines.generalize(RG, f"{name}-vm")
    return vm


def definition(azure: Azure, name: str, generation: str, **features: str) -> cm.GalleryImage:
    azure.compute.galleries.begin_create_or_update(
        RG, "gal", cm.Gallery(location=LOCATION)
    ).result()
    return azure.compute.gallery_images.begin_create_or_update(
        RG,
        "gal",
        name,
        cm.GalleryImage(
            location=LOCATION,
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation=generation,
            identifier=cm.GalleryImageIdentifier(publisher="p", offer="o", sku=name),
            features=[cm.GalleryImageFeature(name=k, value=v) for k, v in features.items()],
        ),
    ).result()


def version_from(azure: Azure, definition_name: str, source_id: str, vm: bool) -> Any:
    source = (
        cm.GalleryArtifactVersionFullSource(virtual_machine_id=source_id)
        if vm
        else cm.GalleryArtifactVersionFullSource(id=source_id)
    )
    return azure.compute.gallery_image_versions.begin_create_or_update(
        RG,
        "gal",
        definition_name,
        "1.0.0",
        cm.GalleryImageVersion(
            location=LOCATION,
            storage_profile=cm.GalleryImageVersionStorageProfile(source=source),
        ),
    ).result()


def test_without_security_profile_the_platform_default_applies(
    azure: Azure, azure_tl_default: Azure
) -> None:
    standard = create_vm(azure, "s1", make_network(azure))
    # The SDK's api-version is after 2025-11-01, from which Azure shows Standard.
    assert standard.security_profile.security_type == "Standard"
    trusted = create_vm(azure_tl_default, "t1", make_network(azure_tl_default))
    assert trusted.security_profile.security_type == "TrustedLaunch"
    assert trusted.security_profile.uefi_settings.v_tpm_enabled is True
    # A Gen1 image cannot be Trusted Launch: the default falls back to Standard.
    gen1 = create_vm(
        azure_tl_default, "t2", make_network_nic_only(azure_tl_default, "t2"), sku="server-gen1"
    )
    assert gen1.security_profile.security_type == "Standard"
    view = azure_tl_default.compute.virtual_machines.instance_view(RG, "t2-vm")
    assert view.hyper_v_generation == "V1"


def test_an_explicit_security_type_is_answered_as_sent(azure: Azure) -> None:
    vm = create_vm(azure, "s1", make_network(azure), security_profile=TL)
    assert vm.security_profile.security_type == "TrustedLaunch"
    standard = create_vm(
        azure,
        "s2",
        make_network_nic_only(azure, "s2"),
        security_profile=cm.SecurityProfile(security_type="Standard"),
    )
    assert standard.security_profile.security_type == "Standard"
    error = refused(
        lambda: create_vm(
            azure, "s3", make_network_nic_only(azure, "s3"), sku="server-gen1", security_profile=TL
        )
    )
    assert error.status_code == 400 and error.error.code == "BadRequest"
    assert "Use of TrustedLaunch setting is not supported" in error.message
    error = refused(
        lambda: create_vm(
            azure,
            "s4",
            make_network_nic_only(azure, "s4"),
            size="Standard_D2s_v3",
            security_profile=TL,
        )
    )
    assert error.status_code == 400 and error.error.code == "BadRequest"
    assert "'Standard_D2s_v3' is not supported for creation of VMs" in error.message


def test_a_size_must_boot_the_image_generation(azure: Azure) -> None:
    error = refused(
        lambda: create_vm(
            azure, "g1", make_network(azure), sku="server-gen1", size="Standard_D2ads_v6"
        )
    )
    assert error.status_code == 400 and error.error.code == "BadRequest"
    assert "cannot boot Hypervisor Generation '1'" in error.message


def test_nvme_only_sizes_get_nvme_and_refuse_scsi(azure: Azure) -> None:
    nic = make_network(azure)
    vm = create_vm(azure, "n1", nic, size="Standard_D2ads_v6")
    assert vm.storage_profile.disk_controller_type == "NVMe"
    scsi = create_vm(azure, "n2", make_network_nic_only(azure, "n2"), size="Standard_D2s_v5")
    assert scsi.storage_profile.disk_controller_type == "SCSI"
    error = refused(
        lambda: create_vm(
            azure,
            "n3",
            make_network_nic_only(azure, "n3"),
            size="Standard_D2s_v6",
            controller="SCSI",
        )
    )
    assert error.status_code == 400 and error.error.code == "InvalidParameter"
    assert error.error.target == "storageProfile.diskControllerType"
    error = refused(
        lambda: create_vm(
            azure,
            "n4",
            make_network_nic_only(azure, "n4"),
            size="Standard_D2s_v5",
            controller="NVMe",
        )
    )
    assert error.error.code == "InvalidParameter"
    assert "cannot boot with DiskControllerType 'NVMe'" in error.message


def test_no_managed_image_from_a_trusted_launch_vm(azure: Azure) -> None:
    vm = captured_vm(azure, "c1", make_network(azure), security_profile=TL)
    error = refused(
        lambda: azure.compute.images.begin_create_or_update(
            RG, "img", cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id))
        ).result()
    )
    assert error.status_code == 409 and error.error.code == "OperationNotAllowed"
    assert "not supported for virtual machine with TrustedLaunch" in error.message


def test_a_managed_image_takes_the_source_generation_and_refuses_another(azure: Azure) -> None:
    vm = captured_vm(azure, "c1", make_network(azure), sku="server-gen1")
    error = refused(
        lambda: azure.compute.images.begin_create_or_update(
            RG,
            "img",
            cm.Image(
                location=LOCATION,
                source_virtual_machine=cm.SubResource(id=vm.id),
                hyper_v_generation="V2",
            ),
        ).result()
    )
    assert error.status_code == 409 and error.error.code == "Conflict"
    image = azure.compute.images.begin_create_or_update(
        RG, "img", cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id))
    ).result()
    assert image.hyper_v_generation == "V1"


def test_a_trusted_launch_vm_goes_only_into_a_trusted_launch_definition(azure: Azure) -> None:
    vm = captured_vm(azure, "c1", make_network(azure), security_profile=TL)
    definition(azure, "plain", "V2")
    definition(azure, "supported", "V2", SecurityType="TrustedLaunchSupported")
    definition(azure, "gen1", "V1", SecurityType="TrustedLaunch")
    definition(azure, "tl", "V2", SecurityType="TrustedLaunch", DiskControllerTypes="SCSI, NVMe")
    for name in ("plain", "supported"):
        error = refused(lambda n=name: version_from(azure, n, str(vm.id), vm=True))
        assert error.status_code == 409 and error.error.code == "Conflict"
        assert "contains TrustedLaunch or ConfidentialVM security data" in error.message
    error = refused(lambda: version_from(azure, "gen1", str(vm.id), vm=True))
    assert error.status_code == 409 and "different Hypervisor generation" in error.message
    version = version_from(azure, "tl", str(vm.id), vm=True)
    assert version.provisioning_state == "Succeeded"

    # VMs from it must be Trusted Launch; an NVMe size works (the definition says so).
    nic = make_network_nic_only(azure, "r1")
    error = refused(
        lambda: create_vm(
            azure,
            "r1",
            nic,
            image_id=version.id,
            security_profile=cm.SecurityProfile(security_type="Standard"),
        )
    )
    assert error.status_code == 400 and error.error.code == "BadRequest"
    assert "only supports creation of VMs and VM Scale Sets with 'TrustedLaunch'" in error.message
    error = refused(lambda: create_vm(azure, "r1", nic, image_id=version.id))
    assert error.error.code == "BadRequest"  # no securityProfile: Standard by default here
    relaunched = create_vm(
        azure, "r1", nic, image_id=version.id, security_profile=TL, size="Standard_D2ads_v6"
    )
    assert relaunched.storage_profile.disk_controller_type == "NVMe"


def test_a_standard_vm_is_refused_by_a_trusted_launch_supported_definition(azure: Azure) -> None:
    vm = captured_vm(azure, "c1", make_network(azure))
    definition(azure, "supported", "V2", SecurityType="TrustedLaunchSupported")
    definition(azure, "plain", "V2")
    error = refused(lambda: version_from(azure, "supported", str(vm.id), vm=True))
    assert error.status_code == 400 and error.error.code == "InvalidParameter"
    image = azure.compute.images.begin_create_or_update(
        RG, "img", cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id))
    ).result()
    assert version_from(azure, "supported", str(image.id), vm=False).provisioning_state == (
        "Succeeded"
    )
    # A definition without DiskControllerTypes is SCSI only: no VM from it on an NVMe-only size.
    plain = version_from(azure, "plain", str(image.id), vm=False)
    error = refused(
        lambda: create_vm(
            azure,
            "r1",
            make_network_nic_only(azure, "r1"),
            image_id=plain.id,
            size="Standard_D2ads_v6",
        )
    )
    assert error.status_code == 400 and error.error.code == "InvalidParameter"
    assert "cannot boot with OS image or disk" in error.message


def test_a_vm_from_a_captured_image_gets_the_source_generation_and_scsi(
    azure: Azure,
) -> None:
    """The generation comes with the image; NVMe does not (a managed image is unmarked, see
    test_arm_vms_from_images.py)."""
    vm = captured_vm(azure, "c1", make_network(azure), size="Standard_D2ads_v6")
    image = azure.compute.images.begin_create_or_update(
        RG, "img", cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id))
    ).result()
    assert image.hyper_v_generation == "V2"
    again = create_vm(
        azure, "r1", make_network_nic_only(azure, "r1"), image_id=image.id, size="Standard_D2ads_v5"
    )
    assert again.storage_profile.disk_controller_type == "SCSI"
    assert azure.compute.virtual_machines.instance_view(RG, "r1-vm").hyper_v_generation == "V2"
    error = refused(
        lambda: create_vm(
            azure, "r2", make_network_nic_only(azure, "r2"), image_id=image.id, security_profile=TL
        )
    )
    assert error.error.code == "BadRequest"  # managed images do not make Trusted Launch VMs


def test_localcloud_up_takes_the_platform_default_security_type() -> None:
    from localcloud.cli import parse_args

    assert parse_args(["up"]).default_security_type == "Standard"
    chosen = parse_args(["up", "--default-security-type", "TrustedLaunch"])
    assert chosen.default_security_type == "TrustedLaunch"
    with pytest.raises(SystemExit):
        parse_args(["up", "--default-security-type", "ConfidentialVM"])


def test_exact_version_is_the_version_latest_resolved_to(azure: Azure) -> None:
    """imageReference.exactVersion "differs from 'version', only if the value specified in
    'version' field is 'latest'" (Compute REST ImageReference, as azure-mgmt-compute documents
    it): latest resolves to the image's newest version, a pinned version is answered as sent."""
    latest = create_vm(azure, "v1", make_network(azure))
    assert latest.storage_profile.image_reference.version == "latest"
    resolved = latest.storage_profile.image_reference.exact_version
    assert resolved and resolved.startswith("24.04.")
    pinned = vm_parameters(make_network_nic_only(azure, "v2"), "v2")
    pinned.storage_profile.image_reference.version = "24.04.202409120"
    made = azure.compute.virtual_machines.begin_create_or_update(RG, "v2-vm", pinned).result()
    assert made.storage_profile.image_reference.exact_version == "24.04.202409120"
