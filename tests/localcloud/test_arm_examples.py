"""Replay Azure's official REST examples (../shared/azure-rest) against the ARM emulator.

Each example's request (path with its parameters, api-version, body) is sent as is, after the
resources it refers to were made; the reply must use one of the example's status codes and
carry the example reply's important fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread

SPECS = Path("/work/shared/azure-rest/specification")
SUB = "00000000-0000-0000-0000-0000000000aa"
# Placeholders and sample subscription ids in the examples, and what they become here.
SUBSTITUTIONS = {
    "{subscription-id}": SUB,
    "{subscriptionId}": SUB,
    "00000000-0000-0000-0000-000000000000": SUB,
    "24fb23e3-6ba3-41f0-9b6e-e41131d5d61e": SUB,
    "/subscriptions/subid/": f"/subscriptions/{SUB}/",
    '"subid"': f'"{SUB}"',
    "{resourceGroup}": "myResourceGroup",
    "{vmName}": "myVM",
    "{existing-nic-name}": "myNIC",
    "{existing-custom-image-name}": "myImage",
    "{your-username}": "azureuser",
    "{your-password}": "not-used-by-localcloud",
    # The examples' marketplace images become one localcloud offers (any other is
    # PlatformImageNotFound there, as an image missing from a region is on Azure): its Gen1
    # SKU, as the examples' images and gallery definitions (hyperVGeneration V1) are Gen1.
    "{image_publisher}": "Canonical",
    "{image_offer}": "ubuntu-24_04-lts",
    "{image_sku}": "server-gen1",
    '"publisher": "MicrosoftWindowsServer"': '"publisher": "Canonical"',
    '"offer": "WindowsServer"': '"offer": "ubuntu-24_04-lts"',
    '"sku": "2016-Datacenter"': '"sku": "server-gen1"',
    '"offer": "UbuntuServer"': '"offer": "ubuntu-24_04-lts"',
    '"sku": "16.04-LTS"': '"sku": "server-gen1"',
    # The examples pair Dv2 sizes with Premium_LRS disks, which Azure refuses (the Dv2-series
    # page: "Premium Storage: Not Supported"; the 400 InvalidParameter users quote in
    # MicrosoftLearning/20533-ImplementingMicrosoftAzureInfrastructureSolutions#345): their
    # premium-capable twins, DSv2, are sent instead.
    '"vmSize": "Standard_D1_v2"': '"vmSize": "Standard_DS1_v2"',
    '"vmSize": "Standard_D2_v2"': '"vmSize": "Standard_DS2_v2"',
}
IMPORTANT = {
    "id", "name", "type", "location", "properties", "provisioningState", "value", "statuses",
    "storageProfile", "osProfile", "networkProfile", "hardwareProfile", "ipConfigurations",
    "subnets", "securityRules", "defaultSecurityRules", "addressSpace", "publishingProfile",
    "identifier", "osType", "osState", "sourceVirtualMachine", "osDisk", "dataDisks",
    "computerName", "disks", "replicationStatus", "subnet", "publicIPAddress", "imageReference",
    "vmId", "code", "lun", "diskSizeGB", "publicIPAllocationMethod", "addressPrefix",
}  # fmt: skip

VM = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}"
NET = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"
)
IMG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/images"
GAL = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries/{galleryName}"
RG = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"

# (example file, method, path template): in the order a person would make the calls.
STEPS: list[tuple[str, str, str]] = [
    ("CreateResourceGroup.json", "PUT", RG),
    ("PublicIpAddressCreateDefaults.json", "PUT", NET + "/publicIPAddresses/{publicIpAddressName}"),
    ("PublicIpAddressCreateCustomizedValues.json", "PUT", NET + "/publicIPAddresses/{publicIpAddressName}"),
    ("PublicIpAddressGet.json", "GET", NET + "/publicIPAddresses/{publicIpAddressName}"),
    ("NetworkSecurityGroupCreateWithRule.json", "PUT", NET + "/networkSecurityGroups/{networkSecurityGroupName}"),
    ("NetworkSecurityGroupGet.json", "GET", NET + "/networkSecurityGroups/{networkSecurityGroupName}"),
    ("VirtualNetworkCreateSubnet.json", "PUT", NET + "/virtualNetworks/{virtualNetworkName}"),
    ("VirtualNetworkGet.json", "GET", NET + "/virtualNetworks/{virtualNetworkName}"),
    ("NetworkInterfaceCreate.json", "PUT", NET + "/networkInterfaces/{networkInterfaceName}"),
    ("NetworkInterfaceGet.json", "GET", NET + "/networkInterfaces/{networkInterfaceName}"),
    ("NetworkInterfaceDelete.json", "DELETE", NET + "/networkInterfaces/{networkInterfaceName}"),
    ("PublicIpAddressDelete.json", "DELETE", NET + "/publicIPAddresses/{publicIpAddressName}"),
    ("NetworkSecurityGroupDelete.json", "DELETE", NET + "/networkSecurityGroups/{networkSecurityGroupName}"),
    ("VirtualNetworkDelete.json", "DELETE", NET + "/virtualNetworks/{virtualNetworkName}"),
    ("VirtualMachine_Create_WithSshAuthentication.json", "PUT", VM),
    ("VirtualMachine_Get.json", "GET", VM),
    ("VirtualMachine_Get_InstanceView.json", "GET", VM + "/instanceView"),
    ("VirtualMachine_ListAll_MinimumSet_Gen.json", "GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines"),
    ("VirtualMachine_List_MinimumSet_Gen.json", "GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines"),
    ("VirtualMachine_PowerOff_MinimumSet_Gen.json", "POST", VM + "/powerOff"),
    ("VirtualMachine_Start_MinimumSet_Gen.json", "POST", VM + "/start"),
    ("VirtualMachine_Restart_MinimumSet_Gen.json", "POST", VM + "/restart"),
    ("VirtualMachine_Deallocate_MinimumSet_Gen.json", "POST", VM + "/deallocate"),
    ("VirtualMachine_Generalize.json", "POST", VM + "/generalize"),
    ("VirtualMachine_Delete_Force.json", "DELETE", VM),
    ("VirtualMachine_Create_WithEmptyDataDisks.json", "PUT", VM),
    ("Image_CreateFromAVM.json", "PUT", IMG + "/{imageName}"),
    ("Image_Get.json", "GET", IMG + "/{imageName}"),
    ("Image_ListByResourceGroup.json", "GET", IMG),
    ("VirtualMachine_Create_FromACustomImage.json", "PUT", VM),
    ("Gallery_Create.json", "PUT", GAL),
    ("GalleryImage_Create.json", "PUT", GAL + "/images/{galleryImageName}"),
    ("GalleryImageVersion_Create_WithVmAsSource.json", "PUT", GAL + "/images/{galleryImageName}/versions/{galleryImageVersionName}"),
    ("GalleryImageVersion_Get_WithReplicationStatus.json", "GET", GAL + "/images/{galleryImageName}/versions/{galleryImageVersionName}"),
    ("GalleryImageVersion_Delete.json", "DELETE", GAL + "/images/{galleryImageName}/versions/{galleryImageVersionName}"),
    ("Gallery_Delete.json", "DELETE", GAL),
    ("VirtualMachine_Create_FromAGeneralizedSharedImage.json", "PUT", VM),
    ("Images_Delete_MinimumSet_Gen.json", "DELETE", IMG + "/{imageName}"),
    ("ForceDeleteVMsInResourceGroup.json", "DELETE", RG),
]  # fmt: skip


def load(name: str) -> dict[str, Any]:
    (path,) = SPECS.rglob(name)
    text = path.read_text()
    for placeholder, value in SUBSTITUTIONS.items():
        text = text.replace(placeholder, value)
    example: dict[str, Any] = json.loads(text)
    return example


class Arm:
    """Raw REST calls with a managed-identity token, waiting for long-running operations."""

    def __init__(self, running: RunningEmulator) -> None:
        self.base = running.arm_url
        self.verify = str(running.ca_pem)
        token = requests.get(
            running.identity_endpoint,
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
            headers={"X-IDENTITY-HEADER": running.identity_header},
            timeout=10,
        ).json()["access_token"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(
        self, method: str, path: str, api: str, body: Any = None, **query: str
    ) -> requests.Response:
        return self.session.request(
            method,
            self.base + path,
            params={"api-version": api, **query},
            json=body,
            verify=self.verify,
            timeout=30,
        )

    def wait(self, reply: requests.Response) -> dict[str, Any]:
        """Poll Azure-AsyncOperation until the operation ends; its final status resource."""
        url = reply.headers.get("Azure-AsyncOperation")
        if not url:
            return {"status": "Succeeded"}
        for _ in range(200):
            status: dict[str, Any] = self.session.get(url, verify=self.verify, timeout=10).json()
            if status["status"] != "InProgress":
                return status
            time.sleep(0.02)
        raise AssertionError(f"operation {url} never finished")

    def done(self, method: str, path: str, api: str, body: Any = None) -> requests.Response:
        reply = self.call(method, path, api, body)
        assert reply.status_code < 300, reply.text
        assert self.wait(reply)["status"] == "Succeeded"
        return reply


def group_path(group: str) -> str:
    return f"/subscriptions/{SUB}/resourcegroups/{group}"


def vm_path(group: str, name: str) -> str:
    return f"{group_path(group)}/providers/Microsoft.Compute/virtualMachines/{name}"


def prepare(arm: Arm, running: RunningEmulator, example: str) -> None:
    """Make what `example` refers to (ARM would refuse the example otherwise)."""
    compute_api, network_api = "2025-04-01", "2025-03-01"
    net = f"{group_path('rg1')}/providers/Microsoft.Network"
    if example == "PublicIpAddressCreateDefaults.json":
        for group in ("rg1", "myResourceGroup", "rgcompute"):
            arm.call("PUT", group_path(group), "2024-03-01", {"location": "westus"})
    elif example == "PublicIpAddressGet.json":
        arm.done("PUT", f"{net}/publicIPAddresses/testDNS-ip", network_api, {"location": "westus"})
    elif example == "NetworkInterfaceCreate.json":
        vnet = {
            "location": "eastus",
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}],
            },
        }
        arm.done("PUT", f"{net}/virtualNetworks/rg1-vnet", network_api, vnet)
    elif example == "VirtualMachine_Create_WithSshAuthentication.json":
        my = f"{group_path('myResourceGroup')}/providers/Microsoft.Network"
        vnet = {
            "location": "westus",
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}],
            },
        }
        arm.done("PUT", f"{my}/virtualNetworks/myVnet", network_api, vnet)
        nic = {
            "location": "westus",
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": f"{my}/virtualNetworks/myVnet/subnets/default"}
                        },
                    }
                ]
            },
        }
        arm.done("PUT", f"{my}/networkInterfaces/myNIC", network_api, nic)
    elif example == "VirtualMachine_List_MinimumSet_Gen.json":
        names = ["aaaaaaaaaaaaaaaaaa", "aaaaa", "aaa", "aaaaaaaaaaaaaaaa", "myVMName"]
        for group, name in [("rgcompute", n) for n in names[:4]] + [("myResourceGroup", names[4])]:
            reply = arm.session.post(
                running.arm_url + "/localcloud/records",
                json={"subscription": SUB, "resourceGroup": group, "names": [name]},
                verify=arm.verify,
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
    elif example == "VirtualMachine_Generalize.json":
        arm.done("POST", vm_path("myResourceGroup", "myVMName") + "/deallocate", compute_api)
    elif example in (
        "Image_CreateFromAVM.json",
        "GalleryImageVersion_Create_WithVmAsSource.json",
    ):
        arm.done("POST", vm_path("myResourceGroup", "myVM") + "/deallocate", compute_api)
        arm.done("POST", vm_path("myResourceGroup", "myVM") + "/generalize", compute_api)
    elif example == "VirtualMachine_Create_FromACustomImage.json":
        arm.done("DELETE", vm_path("myResourceGroup", "myVM"), compute_api)
    elif example == "Gallery_Delete.json":
        gallery = f"{group_path('myResourceGroup')}/providers/Microsoft.Compute/galleries"
        arm.done("DELETE", f"{gallery}/myGalleryName/images/myGalleryImageName", "2025-03-03")
    elif example == "VirtualMachine_Create_FromAGeneralizedSharedImage.json":
        arm.done("DELETE", vm_path("myResourceGroup", "myVM"), compute_api)
        compute = f"{group_path('myResourceGroup')}/providers/Microsoft.Compute"
        gallery = f"{compute}/galleries/mySharedGallery"
        arm.done("PUT", gallery, "2025-03-03", {"location": "westus"})
        definition = {
            "location": "westus",
            "properties": {
                "osType": "Linux",
                "osState": "Generalized",
                "identifier": {"publisher": "p", "offer": "o", "sku": "s"},
            },
        }
        arm.done("PUT", f"{gallery}/images/mySharedImage", "2025-03-03", definition)
        version = {
            "location": "westus",
            "properties": {"storageProfile": {"source": {"id": f"{compute}/images/myImage"}}},
        }
        arm.done("PUT", f"{gallery}/images/mySharedImage/versions/1.0.0", "2025-03-03", version)


def check_shape(expected: Any, actual: Any, where: str) -> None:
    """The example's important keys are present, recursively (values may differ)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key in IMPORTANT:
                assert key in actual, f"{where}: '{key}' missing from {sorted(actual)}"
                check_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected:
        assert isinstance(actual, list), f"{where}: expected a list"
        if where.endswith(".value"):
            assert actual, f"{where}: expected items"
        if actual:  # how many disks or rules differs from the example's own resources
            check_shape(expected[0], actual[0], f"{where}[0]")


@pytest.fixture(scope="module")
def arm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Arm, RunningEmulator]]:
    state = tmp_path_factory.mktemp("arm-examples")
    with emulator_in_thread(state) as (running, _):
        yield Arm(running), running


@pytest.mark.parametrize(("example", "method", "template"), STEPS, ids=[s[0] for s in STEPS])
def test_example_replays(
    arm_env: tuple[Arm, RunningEmulator], example: str, method: str, template: str
) -> None:
    arm, running = arm_env
    data = load(example)
    params = data["parameters"]
    prepare(arm, running, example)
    api = params.get("api-version") or params["version"]
    path = template.format(**{k: v for k, v in params.items() if isinstance(v, str)})
    bodies = [v for v in params.values() if isinstance(v, dict)]
    query = {
        k: params[k] for k in ("$expand", "forceDeletion", "forceDeletionTypes") if k in params
    }
    reply = arm.call(method, path, api, bodies[0] if bodies else None, **query)
    codes = {int(code) for code in data["responses"]}
    assert reply.status_code in codes, f"{reply.status_code} {reply.text}"
    if reply.status_code == 202 or (reply.status_code == 201 and template != RG):
        assert "Azure-AsyncOperation" in reply.headers
        if reply.status_code == 202:
            assert reply.headers["Retry-After"] == "1"
            assert "Location" in reply.headers
        assert arm.wait(reply)["status"] == "Succeeded"
    expected = data["responses"][str(reply.status_code)].get("body")
    if expected and reply.content:
        check_shape(expected, reply.json(), example)
