# The compute models' overloads name only `properties=...`; at run time the SDK also takes the
# flattened keywords used here (as its own samples do), which mypy cannot see.
# mypy: disable-error-code="call-overload,arg-type,union-attr"
"""The real azure-mgmt clients against the ARM emulator: create, power, capture, refuse, page."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as net
from azure.mgmt.resource.resources import ResourceManagementClient

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import EmulatorThread, emulator_in_thread

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-labimage"
LOCATION = "westeurope"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000 test"


class Azure:
    """The three management clients, built exactly as the controller builds them."""

    def __init__(self, running: RunningEmulator, credential: Any) -> None:
        options = {
            "base_url": running.arm_url,
            "connection_verify": str(running.ca_pem),
            "polling_interval": 0.05,  # the emulator runs with Retry-After left out
        }
        self.resource = ResourceManagementClient(credential, SUB, **options)
        self.network = NetworkManagementClient(credential, SUB, **options)
        self.compute = ComputeManagementClient(credential, SUB, **options)


@pytest.fixture
def identity_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, identity_env: None
) -> Iterator[tuple[RunningEmulator, EmulatorThread, MemoryRunner, Azure]]:
    runner = MemoryRunner()
    with emulator_in_thread(tmp_path, runner, retry_after=0, page_size=100) as (
        running,
        thread,
    ):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        azure = Azure(running, ManagedIdentityCredential())
        azure.resource.resource_groups.create_or_update(
            RG, {"location": LOCATION, "tags": {"labimage-build": "b-1"}}
        )
        yield running, thread, runner, azure


def make_network(azure: Azure, prefix: str = "b1") -> str:
    """VNet + subnet + NSG + public IP + NIC, as the provision step makes them; the NIC id."""
    tags = {"labimage-build": prefix}
    nsg = azure.network.network_security_groups.begin_create_or_update(
        RG,
        f"{prefix}-nsg",
        net.NetworkSecurityGroup(
            location=LOCATION,
            tags=tags,
            security_rules=[
                net.SecurityRule(
                    name="ssh",
                    protocol="Tcp",
                    source_port_range="*",
                    destination_port_range="22",
                    source_address_prefix="203.0.113.0/24",
                    destination_address_prefix="*",
                    access="Allow",
                    priority=100,
                    direction="Inbound",
                )
            ],
        ),
    ).result()
    vnet = azure.network.virtual_networks.begin_create_or_update(
        RG,
        f"{prefix}-vnet",
        net.VirtualNetwork(
            location=LOCATION,
            tags=tags,
            address_space=net.AddressSpace(address_prefixes=["10.0.0.0/16"]),
            subnets=[
                net.Subnet(
                    name="default",
                    address_prefix="10.0.0.0/24",
                    network_security_group=net.NetworkSecurityGroup(id=nsg.id),
                )
            ],
        ),
    ).result()
    pip = azure.network.public_ip_addresses.begin_create_or_update(
        RG,
        f"{prefix}-ip",
        net.PublicIPAddress(
            location=LOCATION,
            tags=tags,
            sku=net.PublicIPAddressSku(name="Standard"),
            public_ip_allocation_method="Static",
            delete_option="Delete",
        ),
    ).result()
    assert vnet.subnets
    return make_nic(azure, prefix, vnet.subnets[0].id, pip.id)


def make_nic(azure: Azure, prefix: str, subnet_id: str | None, pip_id: str | None = None) -> str:
    config = net.NetworkInterfaceIPConfiguration(
        name="ipconfig1",
        subnet=net.Subnet(id=subnet_id),
        public_ip_address=net.PublicIPAddress(id=pip_id) if pip_id else None,
    )
    nic = azure.network.network_interfaces.begin_create_or_update(
        RG,
        f"{prefix}-nic",
        net.NetworkInterface(
            location=LOCATION, tags={"labimage-build": prefix}, ip_configurations=[config]
        ),
    ).result()
    return str(nic.id)


def vm_parameters(
    nic_id: str, prefix: str = "b1", image_id: str | None = None
) -> cm.VirtualMachine:
    data_disks = (
        []
        if image_id
        else [
            cm.DataDisk(
                lun=0,
                name=f"{prefix}-data",
                create_option="Empty",
                disk_size_gb=256,
                delete_option="Delete",
            )
        ]
    )
    image = (
        cm.ImageReference(id=image_id)
        if image_id
        else cm.ImageReference(
            publisher="Canonical", offer="ubuntu-24_04-lts", sku="server", version="latest"
        )
    )
    return cm.VirtualMachine(
        location=LOCATION,
        tags={"labimage-build": prefix},
        hardware_profile=cm.HardwareProfile(vm_size="Standard_D4s_v5"),
        storage_profile=cm.StorageProfile(
            image_reference=image,
            os_disk=cm.OSDisk(
                name=f"{prefix}-osdisk",
                create_option="FromImage",
                managed_disk=cm.ManagedDiskParameters(storage_account_type="Premium_LRS"),
                delete_option="Delete",
            ),
            data_disks=data_disks,
        ),
        os_profile=cm.OSProfile(
            computer_name=f"{prefix}-host",
            admin_username="azureuser",
            custom_data=base64.b64encode(b"#cloud-config\n{}\n").decode(),
            linux_configuration=cm.LinuxConfiguration(
                disable_password_authentication=True,
                ssh=cm.SshConfiguration(
                    public_keys=[
                        cm.SshPublicKey(
                            path="/home/azureuser/.ssh/authorized_keys", key_data=SSH_KEY
                        )
                    ]
                ),
            ),
        ),
        network_profile=cm.NetworkProfile(
            network_interfaces=[
                cm.NetworkInterfaceReference(id=nic_id, primary=True, delete_option="Delete")
            ]
        ),
    )


def power_state(azure: Azure, name: str) -> str:
    view = azure.compute.virtual_machines.instance_view(RG, name)
    codes = [s.code for s in view.statuses if s.code.startswith("PowerState/")]
    return codes[0].split("/", 1)[1]


def test_default_credential_from_identity_endpoint_reaches_compute(cloud: Any) -> None:
    running, _, _, _ = cloud
    credential = DefaultAzureCredential()
    token = credential.get_token("https://management.azure.com/.default")
    assert token.token and token.expires_on > time.time()
    compute = ComputeManagementClient(
        credential, SUB, base_url=running.arm_url, connection_verify=str(running.ca_pem)
    )
    assert list(compute.virtual_machines.list(RG)) == []


def test_calls_without_token_or_api_version_are_refused(cloud: Any) -> None:
    running, *_ = cloud
    url = f"{running.arm_url}/subscriptions/{SUB}/resourcegroups/{RG}"
    no_token = requests.get(url, params={"api-version": "2024-03-01"}, verify=running.ca_pem)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "AuthenticationFailed"
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    no_version = requests.get(
        url, headers={"Authorization": f"Bearer {token}"}, verify=running.ca_pem
    )
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"


def test_build_lifecycle_network_vm_capture_relaunch(cloud: Any) -> None:
    running, _, runner, azure = cloud
    nic_id = make_network(azure)
    vm = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b1-vm", vm_parameters(nic_id)
    ).result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.tags == {"labimage-build": "b1"}
    assert vm.storage_profile.data_disks[0].disk_size_gb == 256
    assert power_state(azure, "b1-vm") == "running"
    spec = runner.boot_spec(vm_key_of(running, vm.id))
    assert spec is not None and spec.guest is not None
    assert spec.guest.hostname == "b1-host" and spec.guest.authorized_keys == [SSH_KEY]
    assert spec.guest.custom_data == b"#cloud-config\n{}\n"
    assert [d.lun for d in spec.data_disks] == [0]
    address = azure.network.public_ip_addresses.get(RG, "b1-ip").ip_address
    assert address

    azure.compute.virtual_machines.begin_deallocate(RG, "b1-vm").result()
    assert power_state(azure, "b1-vm") == "deallocated"
    assert azure.network.public_ip_addresses.get(RG, "b1-ip").ip_address is None
    azure.compute.virtual_machines.generalize(RG, "b1-vm")
    view = azure.compute.virtual_machines.instance_view(RG, "b1-vm")
    assert "OSState/generalized" in [s.code for s in view.statuses]

    image = azure.compute.images.begin_create_or_update(
        RG,
        "b1-image",
        cm.Image(
            location=LOCATION,
            tags={"labimage-build": "b1"},
            source_virtual_machine=cm.SubResource(id=vm.id),
        ),
    ).result()
    assert image.provisioning_state == "Succeeded"
    assert [d.lun for d in image.storage_profile.data_disks] == [0]
    assert (running.emulator.state_dir / "images").is_dir()

    gallery = azure.compute.galleries.begin_create_or_update(
        RG, "labgallery", cm.Gallery(location=LOCATION)
    ).result()
    definition = azure.compute.gallery_images.begin_create_or_update(
        RG,
        gallery.name,
        "jupyter",
        cm.GalleryImage(
            location=LOCATION,
            os_type="Linux",
            os_state="Generalized",
            hyper_v_generation="V2",
            identifier=cm.GalleryImageIdentifier(publisher="lab", offer="jupyter", sku="2404"),
        ),
    ).result()
    version = azure.compute.gallery_image_versions.begin_create_or_update(
        RG,
        gallery.name,
        definition.name,
        "1.0.0",
        cm.GalleryImageVersion(
            location=LOCATION,
            storage_profile=cm.GalleryImageVersionStorageProfile(
                source=cm.GalleryArtifactVersionFullSource(id=image.id)
            ),
        ),
    ).result()
    assert version.provisioning_state == "Succeeded"
    assert version.storage_profile.data_disk_images[0].lun == 0

    azure.compute.virtual_machines.begin_delete(RG, "b1-vm").result()
    with pytest.raises(ResourceNotFoundError):
        azure.compute.virtual_machines.get(RG, "b1-vm")
    disk_names = {d.name for d in azure.compute.disks.list_by_resource_group(RG)}
    assert disk_names == set()  # deleteOption Delete on both disks
    with pytest.raises(ResourceNotFoundError):
        azure.network.network_interfaces.get(RG, "b1-nic")
    with pytest.raises(ResourceNotFoundError):
        azure.network.public_ip_addresses.get(RG, "b1-ip")

    # relaunch from the gallery version: the image's data disk comes with it
    nic2 = make_network_nic_only(azure, "b2")
    vm2 = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b2-vm", vm_parameters(nic2, "b2", image_id=version.id)
    ).result()
    assert [d.lun for d in vm2.storage_profile.data_disks] == [0]
    assert vm2.storage_profile.data_disks[0].disk_size_gb == 256
    assert power_state(azure, "b2-vm") == "running"
    copies = [c for c in runner.calls if c[0] in ("copy_os_disk", "copy_data_disk")]
    assert len(copies) == 4  # image (os + lun0), then gallery version (os + lun0)


def make_network_nic_only(azure: Azure, prefix: str) -> str:
    subnet = azure.network.subnets.get(RG, "b1-vnet", "default")
    return make_nic(azure, prefix, subnet.id)


def vm_key_of(running: RunningEmulator, vm_id: str) -> str:
    vm = running.emulator.store.get(vm_id)
    assert vm is not None
    return str(vm.internal["vm_key"])


def error_code(info: pytest.ExceptionInfo[HttpResponseError]) -> str:
    assert info.value.error is not None
    return str(info.value.error.code)


def test_refusals_carry_azure_error_codes(cloud: Any) -> None:
    _, _, _, azure = cloud
    vms = azure.compute.virtual_machines
    nic_id = make_network(azure)
    vm = vms.begin_create_or_update(RG, "b1-vm", vm_parameters(nic_id)).result()

    with pytest.raises(HttpResponseError) as info:
        vms.generalize(RG, "b1-vm")  # still running
    assert info.value.status_code == 409 and error_code(info) == "OperationNotAllowed"

    with pytest.raises(HttpResponseError) as info:
        azure.compute.images.begin_create_or_update(
            RG,
            "img",
            cm.Image(location=LOCATION, source_virtual_machine=cm.SubResource(id=vm.id)),
        ).result()
    assert info.value.status_code == 409 and error_code(info) == "OperationNotAllowed"

    with pytest.raises(HttpResponseError) as info:
        azure.network.network_interfaces.begin_delete(RG, "b1-nic").result()
    assert info.value.status_code == 400 and error_code(info) == "NicInUse"
    with pytest.raises(HttpResponseError) as info:
        azure.network.public_ip_addresses.begin_delete(RG, "b1-ip").result()
    # RULES.md 1.2 (terraform-provider-azurerm#2566)
    assert info.value.status_code == 400
    assert error_code(info) == "PublicIPAddressCannotBeDeleted"

    vms.begin_power_off(RG, "b1-vm").result()
    assert power_state(azure, "b1-vm") == "stopped"
    vms.generalize(RG, "b1-vm")
    with pytest.raises(HttpResponseError) as info:
        vms.begin_start(RG, "b1-vm").result()
    assert info.value.status_code == 409 and error_code(info) == "OperationNotAllowed"

    missing_nic = nic_id.replace("b1-nic", "nope-nic")
    with pytest.raises(HttpResponseError) as info:
        vms.begin_create_or_update(RG, "b2-vm", vm_parameters(missing_nic, "b2")).result()
    assert info.value.status_code == 404 and error_code(info) == "NotFound"

    missing_image = vm.id.replace("virtualMachines/b1-vm", "images/nope")
    nic2 = make_network_nic_only(azure, "b3")
    with pytest.raises(HttpResponseError) as info:
        vms.begin_create_or_update(
            RG, "b3-vm", vm_parameters(nic2, "b3", image_id=missing_image)
        ).result()
    assert info.value.status_code == 404 and error_code(info) == "NotFound"

    subnet = azure.network.subnets.get(RG, "b1-vnet", "default")
    with pytest.raises(HttpResponseError) as info:
        make_nic(azure, "b4", subnet.id.replace("default", "missing"))
    assert info.value.status_code == 400 and error_code(info) == "InvalidResourceReference"

    with pytest.raises(HttpResponseError) as info:
        vms.begin_create_or_update(RG, "bad_name-", vm_parameters(nic2, "b3")).result()
    assert info.value.status_code == 400 and error_code(info) == "InvalidResourceName"
    with pytest.raises(HttpResponseError) as info:
        vms.begin_create_or_update(RG, "x" * 65, vm_parameters(nic2, "b3")).result()
    assert error_code(info) == "InvalidResourceName"
    params = vm_parameters(nic2, "b3")
    params.os_profile.computer_name = "bad_host"
    with pytest.raises(HttpResponseError) as info:
        vms.begin_create_or_update(RG, "b3-vm", params).result()
    assert info.value.status_code == 400 and error_code(info) == "InvalidParameter"

    with pytest.raises(ResourceNotFoundError) as info:
        vms.get(RG, "ghost")
    assert error_code(info) == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        vms.get("no-such-group", "ghost")
    assert error_code(info) == "ResourceGroupNotFound"


def test_a_vm_killed_from_outside_reports_stopped_and_restarts(cloud: Any) -> None:
    running, _, runner, azure = cloud
    vm = azure.compute.virtual_machines.begin_create_or_update(
        RG, "b1-vm", vm_parameters(make_network(azure))
    ).result()
    first = azure.network.public_ip_addresses.get(RG, "b1-ip").ip_address
    runner.kill(vm_key_of(running, vm.id))
    assert power_state(azure, "b1-vm") == "stopped"
    assert azure.network.public_ip_addresses.get(RG, "b1-ip").ip_address is None
    azure.compute.virtual_machines.begin_start(RG, "b1-vm").result()
    assert power_state(azure, "b1-vm") == "running"
    second = azure.network.public_ip_addresses.get(RG, "b1-ip").ip_address
    assert second and second != first


def test_paging_over_250_vms_and_tag_patch(cloud: Any) -> None:
    running, _, _, azure = cloud
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    reply = requests.post(
        f"{running.arm_url}/localcloud/records",
        json={"subscription": SUB, "resourceGroup": "rg-many", "location": LOCATION, "count": 250},
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    )
    assert reply.status_code == 200
    names = [vm.name for vm in azure.compute.virtual_machines.list_all()]
    assert len(names) == 250 and len(set(names)) == 250
    assert len(list(azure.compute.virtual_machines.list("rg-many"))) == 250
    updated = azure.compute.virtual_machines.begin_update(
        "rg-many", names[0], cm.VirtualMachineUpdate(tags={"labimage-autostop": "19:00"})
    ).result()
    assert updated.tags == {"labimage-autostop": "19:00"}


def test_throttled_calls_are_retried_after_retry_after(cloud: Any) -> None:
    running, _, _, azure = cloud
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    requests.post(
        f"{running.arm_url}/localcloud/throttle",
        json={"count": 2, "retryAfter": 1},
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    ).raise_for_status()
    started = time.monotonic()
    group = azure.resource.resource_groups.get(RG)
    assert group.name == RG
    assert time.monotonic() - started >= 2  # two 429s, each honoured for one second


def test_state_survives_an_emulator_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for attempt in range(2):
        with emulator_in_thread(tmp_path, MemoryRunner(), retry_after=0) as (running, _):
            for name, value in running.identity_env().items():
                monkeypatch.setenv(name, value)
            azure = Azure(running, ManagedIdentityCredential())
            if attempt == 0:
                azure.resource.resource_groups.create_or_update(RG, {"location": LOCATION})
                azure.compute.virtual_machines.begin_create_or_update(
                    RG, "b1-vm", vm_parameters(make_network(azure))
                ).result()
                assert power_state(azure, "b1-vm") == "running"
                ca = running.ca_pem.read_bytes()
            else:
                assert running.ca_pem.read_bytes() == ca  # certificate reused
                vm = azure.compute.virtual_machines.get(RG, "b1-vm")
                assert vm.tags == {"labimage-build": "b1"}
                assert power_state(azure, "b1-vm") == "stopped"  # sandboxes do not survive


def test_a_marketplace_image_localcloud_does_not_offer_is_platform_image_not_found(
    cloud: Any,
) -> None:
    _, _, runner, azure = cloud
    nic_id = make_network(azure)
    params = vm_parameters(nic_id)
    params.storage_profile.image_reference = cm.ImageReference(
        publisher="Canonical",
        offer="0001-com-ubuntu-server-jammy",
        sku="22_04-lts",
        version="latest",
    )
    with pytest.raises(HttpResponseError) as info:
        azure.compute.virtual_machines.begin_create_or_update(RG, "b1-vm", params).result()
    assert info.value.status_code == 404 and error_code(info) == "PlatformImageNotFound"
    assert "Canonical:0001-com-ubuntu-server-jammy:22_04-lts:latest" in str(info.value.message)
    assert not [c for c in runner.calls if c[0] == "boot"]
    # the offered one, in any case, is found
    params.storage_profile.image_reference = cm.ImageReference(
        publisher="canonical", offer="Ubuntu-24_04-LTS", sku="Server", version="latest"
    )
    azure.compute.virtual_machines.begin_create_or_update(RG, "b1-vm", params).result()


def test_a_vm_update_with_a_stale_etag_is_refused(cloud: Any) -> None:
    """Compute's PUT/PATCH take If-Match (virtualMachine.json 2025-04-01); a mismatch is 412."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    running, _, _, azure = cloud
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    requests.post(
        f"{running.arm_url}/localcloud/records",
        json={"subscription": SUB, "resourceGroup": "rg-etag", "location": LOCATION, "count": 1},
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    ).raise_for_status()
    vms = azure.compute.virtual_machines
    [listed] = list(vms.list("rg-etag"))
    read = vms.get("rg-etag", listed.name)
    assert read.etag
    first = vms.begin_update(
        "rg-etag",
        listed.name,
        cm.VirtualMachineUpdate(tags={"a": "1"}),
        etag=read.etag,
        match_condition=MatchConditions.IfNotModified,
    ).result()
    assert first.etag and first.etag != read.etag
    with pytest.raises(ResourceModifiedError) as stale:
        vms.begin_update(
            "rg-etag",
            listed.name,
            cm.VirtualMachineUpdate(tags={"b": "2"}),
            etag=read.etag,
            match_condition=MatchConditions.IfNotModified,
        ).result()
    assert stale.value.status_code == 412 and error_code(stale) == "PreconditionFailed"
    assert vms.get("rg-etag", listed.name).tags == {"a": "1"}
