"""Authorization in the ARM emulator: every call against the caller's role assignments.

Azure's model (learn.microsoft.com/azure/role-based-access-control/role-definitions):
assignments at a scope apply to everything under it; `*` wildcards; NotActions subtract
within their role; operation names are case-insensitive. Refusals use ARM's 403 bodies
(RULES.md 1.5: AuthorizationFailed, ARO-RP#66; LinkedAuthorizationFailed, cloud-provider-azure
#1999), and the linked checks of RULES.md 2.1 (VM PUT needs join on its NICs; NIC PUT on its
subnet, public IP and NSG). The role document here is generic Azure, no labimage roles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

from localcloud.arm.authz import Authorization
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread

SUB = "00000000-0000-0000-0000-0000000000a2"
LOC = "westeurope"
NET_API = "api-version=2024-05-01"
VM_API = "api-version=2024-11-01"
RG_API = "api-version=2021-04-01"
TAGS_API = "api-version=2021-04-01"
SUB_SCOPE = f"/subscriptions/{SUB}"


def group(name: str) -> str:
    return f"{SUB_SCOPE}/resourceGroups/{name}"


def role(role_id: str, actions: list[str], not_actions: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": f"/providers/Microsoft.Authorization/roleDefinitions/{role_id}",
        "roleName": role_id,
        "permissions": [{"actions": actions, "notActions": not_actions or []}],
    }


DOCUMENT = {
    "roleDefinitions": [
        role("owner", ["*"]),
        role("net-admin", ["microsoft.network/*"]),  # lower case on purpose
        role("nic-writer", ["Microsoft.Network/networkInterfaces/*"]),
        role("vm-writer", ["Microsoft.Compute/virtualMachines/*"]),
        role("no-deletes", ["*"], ["Microsoft.Compute/*/delete"]),
        role("tagger", ["Microsoft.Resources/tags/write", "Microsoft.Compute/*/read"]),
        role("reader", ["*/read"]),
    ],
    "principals": [
        {"principalId": f"oid-{name}", "clientId": f"client-{name}"}
        for name in ("admin", "alice", "bob", "carol", "tess", "rita")
    ],
    "roleAssignments": [
        {"principalId": "oid-admin", "roleDefinitionId": "owner", "scope": SUB_SCOPE},
        {"principalId": "oid-alice", "roleDefinitionId": "net-admin", "scope": group("rg-net")},
        {"principalId": "oid-alice", "roleDefinitionId": "nic-writer", "scope": group("rg-vm")},
        {"principalId": "oid-alice", "roleDefinitionId": "vm-writer", "scope": group("rg-vm")},
        {"principalId": "oid-bob", "roleDefinitionId": "no-deletes", "scope": group("rg-vm")},
        {"principalId": "oid-bob", "roleDefinitionId": "reader", "scope": group("rg-vm")},
        {"principalId": "oid-carol", "roleDefinitionId": "nic-writer", "scope": group("rg-vm")},
        {"principalId": "oid-carol", "roleDefinitionId": "vm-writer", "scope": group("rg-vm")},
        {"principalId": "oid-tess", "roleDefinitionId": "tagger", "scope": group("rg-vm")},
        {"principalId": "oid-rita", "roleDefinitionId": "reader", "scope": group("rg-vm")},
    ],
}


@dataclass
class Cloud:
    running: RunningEmulator

    def token(self, client_id: str | None) -> requests.Response:
        params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
        if client_id:
            params["client_id"] = client_id
        return requests.get(
            self.running.identity_endpoint,
            params=params,
            headers={"X-IDENTITY-HEADER": self.running.identity_header},
            timeout=10,
        )

    def call(self, who: str, method: str, path: str, body: Any = None) -> requests.Response:
        token = self.token(f"client-{who}").json()["access_token"]
        return requests.request(
            method,
            f"{self.running.arm_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.running.ca_pem),
            timeout=30,
        )


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps(DOCUMENT))
    with emulator_in_thread(tmp_path, retry_after=0, authorization_file=roles) as (running, _):
        made = Cloud(running)
        for name in ("rg-net", "rg-vm", "rg-net2"):
            reply = made.call("admin", "PUT", f"{group(name)}?{RG_API}", {"location": LOC})
            assert reply.status_code == 201, reply.text
        yield made


def network(cloud: Cloud) -> dict[str, str]:
    """As admin: a VNet with a subnet, an NSG and a public IP in rg-net; their ids."""
    base = f"{group('rg-net')}/providers/Microsoft.Network"
    nsg = cloud.call(
        "admin", "PUT", f"{base}/networkSecurityGroups/nsg?{NET_API}", {"location": LOC}
    )
    pip = cloud.call(
        "admin",
        "PUT",
        f"{base}/publicIPAddresses/ip?{NET_API}",
        {
            "location": LOC,
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static"},
        },
    )
    vnet = cloud.call(
        "admin",
        "PUT",
        f"{base}/virtualNetworks/vnet?{NET_API}",
        {
            "location": LOC,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}],
            },
        },
    )
    for reply in (nsg, pip, vnet):
        assert reply.status_code in (200, 201), reply.text
    return {
        "nsg": nsg.json()["id"],
        "pip": pip.json()["id"],
        "subnet": vnet.json()["properties"]["subnets"][0]["id"],
    }


def nic_body(subnet: str, pip: str | None = None, nsg: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"subnet": {"id": subnet}}
    if pip:
        config["publicIPAddress"] = {"id": pip}
    props: dict[str, Any] = {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]}
    if nsg:
        props["networkSecurityGroup"] = {"id": nsg}
    return {"location": LOC, "properties": props}


def add_vm_record(cloud: Cloud, name: str, tags: dict[str, str]) -> str:
    reply = cloud.call(
        "admin",
        "POST",
        "/localcloud/records",
        {
            "subscription": SUB,
            "resourceGroup": "rg-vm",
            "location": LOC,
            "names": [name],
            "tags": tags,
        },
    )
    assert reply.status_code in (200, 201), reply.text
    return f"{group('rg-vm')}/providers/Microsoft.Compute/virtualMachines/{name}"


def error_of(reply: requests.Response) -> dict[str, str]:
    return dict(reply.json()["error"])


# --- the evaluator ----------------------------------------------------------------------------
def test_scopes_cover_their_children_only_on_whole_segments() -> None:
    authz = Authorization.from_json(DOCUMENT)
    vm = f"{group('rg-net')}/providers/Microsoft.Network/networkInterfaces/n"
    assert authz.allows("oid-alice", "Microsoft.Network/networkInterfaces/write", vm)
    assert authz.allows("OID-ALICE", "MICROSOFT.NETWORK/NETWORKINTERFACES/WRITE", vm.upper())
    other = f"{group('rg-net2')}/providers/Microsoft.Network/networkInterfaces/n"
    assert not authz.allows("oid-alice", "Microsoft.Network/networkInterfaces/write", other)
    assert not authz.allows("oid-alice", "Microsoft.Network/networkInterfaces/write", SUB_SCOPE)


def test_not_actions_subtract_within_their_role_only() -> None:
    authz = Authorization.from_json(DOCUMENT)
    vm = f"{group('rg-vm')}/providers/Microsoft.Compute/virtualMachines/v"
    assert authz.allows("oid-bob", "Microsoft.Compute/virtualMachines/write", vm)
    assert not authz.allows("oid-bob", "Microsoft.Compute/virtualMachines/delete", vm)
    assert authz.allows("oid-bob", "Microsoft.Compute/virtualMachines/read", vm)  # Reader too


# --- the token endpoint -----------------------------------------------------------------------
def test_a_token_names_the_identity_it_was_asked_for_and_unknown_ones_get_none(
    cloud: Cloud,
) -> None:
    assert cloud.token(None).status_code == 400  # a user-assigned identity must be named
    assert cloud.token("client-nobody").status_code == 400
    reply = cloud.token("client-alice")
    assert reply.status_code == 200
    assert reply.json()["client_id"] == "client-alice"


# --- ARM calls --------------------------------------------------------------------------------
def test_a_call_outside_the_roles_gets_arms_authorization_failed(cloud: Cloud) -> None:
    reply = cloud.call(
        "alice", "GET", f"{group('rg-net')}/providers/Microsoft.Compute/virtualMachines?{VM_API}"
    )
    assert reply.status_code == 403
    assert error_of(reply) == {
        "code": "AuthorizationFailed",
        "message": "The client 'client-alice' with object id 'oid-alice' does not have "
        "authorization to perform action 'Microsoft.Compute/virtualMachines/read' over scope "
        f"'{group('rg-net')}' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials.",
    }
    # The same identity may do what its roles allow there, and nothing in a look-alike group.
    ok = cloud.call(
        "alice", "GET", f"{group('rg-net')}/providers/Microsoft.Network/virtualNetworks?{NET_API}"
    )
    assert ok.status_code == 200, ok.text
    refused = cloud.call(
        "alice", "GET", f"{group('rg-net2')}/providers/Microsoft.Network/virtualNetworks?{NET_API}"
    )
    assert refused.status_code == 403


def test_a_group_scoped_identity_cannot_make_groups_or_list_the_subscription(
    cloud: Cloud,
) -> None:
    made = cloud.call("alice", "PUT", f"{group('rg-new')}?{RG_API}", {"location": LOC})
    assert made.status_code == 403
    assert "'Microsoft.Resources/subscriptions/resourceGroups/write'" in error_of(made)["message"]
    listed = cloud.call("alice", "GET", f"{SUB_SCOPE}/resources?{RG_API}")
    assert listed.status_code == 403
    assert "'Microsoft.Resources/subscriptions/resources/read'" in error_of(listed)["message"]
    assert f"over scope '{SUB_SCOPE}'" in error_of(listed)["message"]


def test_not_actions_refuse_a_delete_the_wildcard_would_allow(cloud: Cloud) -> None:
    vm = add_vm_record(cloud, "vm-keep", {})
    reply = cloud.call("bob", "DELETE", f"{vm}?{VM_API}")
    assert reply.status_code == 403
    assert "'Microsoft.Compute/virtualMachines/delete'" in error_of(reply)["message"]
    still = cloud.call("bob", "GET", f"{vm}?{VM_API}")
    assert still.status_code == 200, still.text


def test_a_post_action_needs_its_action_operation(cloud: Cloud) -> None:
    vm = add_vm_record(cloud, "vm-run", {})
    reply = cloud.call("rita", "POST", f"{vm}/deallocate?{VM_API}")
    assert reply.status_code == 403
    assert "'Microsoft.Compute/virtualMachines/deallocate/action'" in error_of(reply)["message"]
    assert f"over scope '{vm}'" in error_of(reply)["message"]
    view = cloud.call("rita", "GET", f"{vm}/instanceView?{VM_API}")
    assert view.status_code == 200, view.text


def test_a_nic_needs_join_on_a_subnet_in_another_group(cloud: Cloud) -> None:
    ids = network(cloud)
    nic = f"{group('rg-vm')}/providers/Microsoft.Network/networkInterfaces/nic"
    reply = cloud.call("carol", "PUT", f"{nic}?{NET_API}", nic_body(ids["subnet"], ids["pip"]))
    assert reply.status_code == 403
    assert error_of(reply) == {
        "code": "LinkedAuthorizationFailed",
        "message": "The client 'client-carol' with object id 'oid-carol' has permission to "
        "perform action 'Microsoft.Network/networkInterfaces/write' on scope "
        f"'{nic}'; however, it does not have permission to perform action "
        "'Microsoft.Network/virtualNetworks/subnets/join/action' on the linked scope(s) "
        f"'{ids['subnet']}' or the linked scope(s) are invalid.",
    }
    # Alice may join what is in rg-net (Microsoft.Network/* there): the same NIC is made.
    made = cloud.call(
        "alice", "PUT", f"{nic}?{NET_API}", nic_body(ids["subnet"], ids["pip"], ids["nsg"])
    )
    assert made.status_code in (200, 201), made.text


def test_a_vm_needs_join_on_its_nic(cloud: Cloud) -> None:
    ids = network(cloud)
    nic = cloud.call(
        "admin",
        "PUT",
        f"{group('rg-net')}/providers/Microsoft.Network/networkInterfaces/nic?{NET_API}",
        nic_body(ids["subnet"]),
    ).json()["id"]
    vm = f"{group('rg-vm')}/providers/Microsoft.Compute/virtualMachines/vm"
    body = {"location": LOC, "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}}
    reply = cloud.call("carol", "PUT", f"{vm}?{VM_API}", body)
    assert reply.status_code == 403
    assert error_of(reply)["code"] == "LinkedAuthorizationFailed"
    assert "'Microsoft.Network/networkInterfaces/join/action'" in error_of(reply)["message"]
    assert f"linked scope(s) '{nic}'" in error_of(reply)["message"]


def test_a_vm_needs_read_on_the_gallery_version_it_starts_from(cloud: Cloud) -> None:
    nic = f"{group('rg-vm')}/providers/Microsoft.Network/networkInterfaces/nic"
    version = f"{group('rg-net')}/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"
    vm = f"{group('rg-vm')}/providers/Microsoft.Compute/virtualMachines/vm"
    body = {
        "location": LOC,
        "properties": {
            "storageProfile": {"imageReference": {"id": version}},
            "networkProfile": {"networkInterfaces": [{"id": nic}]},
        },
    }
    reply = cloud.call("carol", "PUT", f"{vm}?{VM_API}", body)
    assert reply.status_code == 403
    assert error_of(reply)["code"] == "LinkedAuthorizationFailed"
    message = error_of(reply)["message"]
    assert "'Microsoft.Compute/galleries/images/versions/read'" in message
    assert f"linked scope(s) '{version}'" in message


def test_admin_routes_and_operation_polls_are_not_checked(cloud: Cloud) -> None:
    add = cloud.call(
        "rita",
        "POST",
        "/localcloud/records",
        {"subscription": SUB, "resourceGroup": "rg-vm", "names": ["vm-admin"]},
    )
    assert add.status_code in (200, 201), add.text
    vm = f"{group('rg-vm')}/providers/Microsoft.Compute/virtualMachines/vm-admin"
    started = cloud.call("bob", "POST", f"{vm}/deallocate?{VM_API}")
    assert started.status_code == 202, started.text
    poll = requests.get(
        started.headers["Azure-AsyncOperation"],
        headers={"Authorization": f"Bearer {cloud.token('client-bob').json()['access_token']}"},
        verify=str(cloud.running.ca_pem),
        timeout=10,
    )
    assert poll.status_code == 200, poll.text


# --- the Tags API ---------------------------------------------------------------------------
def clients(cloud: Cloud, who: str) -> tuple[ResourceManagementClient, ComputeManagementClient]:
    credential = ManagedIdentityCredential(client_id=f"client-{who}")
    options: dict[str, Any] = {
        "base_url": cloud.running.arm_url,
        "connection_verify": str(cloud.running.ca_pem),
        "polling_interval": 0.05,
    }
    return (
        ResourceManagementClient(credential, SUB, **options),
        ComputeManagementClient(credential, SUB, **options),
    )


@pytest.fixture
def identity_env(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in cloud.running.identity_env().items():
        monkeypatch.setenv(name, value)


def test_tags_api_merge_replace_delete_through_the_sdk(cloud: Cloud, identity_env: None) -> None:
    vm = add_vm_record(cloud, "vm-tags", {"owner": "ada", "keep": "1"})
    resources, compute = clients(cloud, "tess")  # Tags API write, no VM write
    scope = vm.lstrip("/")

    def patch(operation: str, tags: dict[str, str]) -> dict[str, str]:
        result = resources.tags.begin_update_at_scope(
            scope, TagsPatchResource(operation=operation, properties=Tags(tags=tags))
        ).result()
        return dict(result.properties.tags or {})

    assert patch("Merge", {"snooze": "20:00", "owner": "bea"}) == {
        "owner": "bea",
        "keep": "1",
        "snooze": "20:00",
    }
    assert dict(compute.virtual_machines.get("rg-vm", "vm-tags").tags or {}) == {
        "owner": "bea",
        "keep": "1",
        "snooze": "20:00",
    }
    assert patch("Delete", {"snooze": "", "keep": "other"}) == {"owner": "bea", "keep": "1"}
    assert patch("Replace", {"only": "x"}) == {"only": "x"}


def test_tags_need_tags_write_or_write_on_the_resource(cloud: Cloud, identity_env: None) -> None:
    vm = add_vm_record(cloud, "vm-locked", {"owner": "ada"})
    path = f"{vm}/providers/Microsoft.Resources/tags/default?{TAGS_API}"
    body = {"operation": "Merge", "properties": {"tags": {"snooze": "x"}}}
    refused = cloud.call("rita", "PATCH", path, body)  # Reader: neither
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "AuthorizationFailed"
    assert "'Microsoft.Resources/tags/write' over scope" in error_of(refused)["message"]
    assert cloud.call("carol", "PATCH", path, body).status_code == 200  # virtualMachines/write
    resources, _ = clients(cloud, "rita")
    with pytest.raises(HttpResponseError) as caught:
        resources.tags.begin_update_at_scope(
            vm.lstrip("/"), TagsPatchResource(operation="Merge", properties=Tags(tags={"a": "b"}))
        ).result()
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "AuthorizationFailed"


# --- Key Vault data plane ---------------------------------------------------------------------
VAULT_ID = f"{group('rg-app')}/providers/Microsoft.KeyVault/vaults/kv"


def test_key_vault_checks_secret_data_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key Vault's RBAC model: each call needs its data action (learn.microsoft.com/azure/
    role-based-access-control/permissions/security#microsoftkeyvault); refusals are 403
    Forbidden / ForbiddenByRbac (piyushsachdeva/Terraform_AKS#2)."""
    document = {
        "roleDefinitions": [
            {
                "id": "officer",
                "permissions": [{"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}],
            },
            {
                "id": "getter",
                "permissions": [
                    {
                        "actions": ["*"],  # control-plane actions grant no data action
                        "dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
                    }
                ],
            },
        ],
        "principals": [
            {"principalId": "oid-officer", "clientId": "client-officer"},
            {"principalId": "oid-getter", "clientId": "client-getter"},
        ],
        "roleAssignments": [
            {"principalId": "oid-officer", "roleDefinitionId": "officer", "scope": VAULT_ID},
            {"principalId": "oid-getter", "roleDefinitionId": "getter", "scope": VAULT_ID},
        ],
    }
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps(document))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with emulator_in_thread(
        tmp_path / "lc", authorization_file=roles, vault_resource_id=VAULT_ID
    ) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)

        def client(who: str) -> SecretClient:
            return SecretClient(
                running.vault_url,
                ManagedIdentityCredential(client_id=f"client-{who}"),
                connection_verify=str(running.ca_pem),
            )

        client("officer").set_secret("key-1", "s3cret")
        assert client("getter").get_secret("key-1").value == "s3cret"
        with pytest.raises(HttpResponseError) as caught:
            client("getter").set_secret("key-2", "nope")
        assert caught.value.status_code == 403
        assert caught.value.error is not None and caught.value.error.code == "Forbidden"
        message = str(caught.value.error.message)
        assert "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'" in message
        assert f"Resource: '{VAULT_ID.lower()}/secrets/key-2'" in message
        with pytest.raises(HttpResponseError) as deleting:
            client("getter").begin_delete_secret("key-1")
        assert deleting.value.status_code == 403
        assert client("officer").get_secret("key-1").value == "s3cret"
