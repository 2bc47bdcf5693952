"""The ARM emulator's list semantics and operation durations, through the real azure-mgmt clients.

Tag-filtered lists follow the Resources REST spec (RULES.md section 5); operations take their
time (localcloud.arm.durations), so a client can see one unfinished; an admin route slows one
kind of call down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as net
from azure.mgmt.resource.resources import ResourceManagementClient

from localcloud.arm.durations import REAL_AZURE_SECONDS, operation_seconds, parse_override
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-lists"
LOCATION = "westeurope"
VNET = "microsoft.network/virtualnetworks"


class Clients:
    def __init__(self, running: RunningEmulator) -> None:
        options = {
            "base_url": running.arm_url,
            "connection_verify": str(running.ca_pem),
            "polling_interval": 0.05,
        }
        credential = ManagedIdentityCredential()
        self.running = running
        self.resource = ResourceManagementClient(credential, SUB, **options)
        self.network = NetworkManagementClient(credential, SUB, **options)
        self.token = credential.get_token("https://management.azure.com/.default").token

    def raw(self, method: str, url: str, body: Any = None) -> requests.Response:
        if url.startswith("/"):
            url = self.running.arm_url + url
        return requests.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.running.ca_pem,
            timeout=30,
        )


@pytest.fixture
def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # VNets take 1.5 s; everything else is instant (lro_scale 0).
    with emulator_in_thread(tmp_path, MemoryRunner(), retry_after=1, lro_seconds={VNET: 1.5}) as (
        running,
        _,
    ):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        azure = Clients(running)
        azure.resource.resource_groups.create_or_update(RG, {"location": LOCATION})
        yield azure


def _nsg(azure: Clients, name: str, tags: dict[str, str]) -> str:
    nsg = azure.network.network_security_groups.begin_create_or_update(
        RG, name, net.NetworkSecurityGroup(location=LOCATION, tags=tags)
    ).result()
    return str(nsg.id)


def _vnet_body() -> net.VirtualNetwork:
    return net.VirtualNetwork(
        location=LOCATION,
        tags={"labimage-build": "b-slow"},
        address_space=net.AddressSpace(address_prefixes=["10.0.0.0/16"]),
    )


# --- rule 3: list semantics -----------------------------------------------------------------------
def test_a_tag_filtered_list_finds_by_tag_but_returns_no_tags_and_ignores_expand(
    clients: Clients,
) -> None:
    tagged = _nsg(clients, "tagged-nsg", {"labimage-build": "b-1", "owner": "ada"})
    _nsg(clients, "other-nsg", {"owner": "bob"})
    query = "$filter=tagName eq 'labimage-build' and tagValue eq 'b-1'&$expand=createdTime"
    for path in (
        f"/subscriptions/{SUB}/resources",
        f"/subscriptions/{SUB}/resourceGroups/{RG}/resources",
    ):
        reply = clients.raw("GET", f"{path}?api-version=2021-04-01&{query}")
        assert reply.status_code == 200
        items = reply.json()["value"]
        assert [i["id"] for i in items] == [tagged]
        assert "tags" not in items[0] and "createdTime" not in items[0]

    # The same through the SDK: the resource is found, its tags are not there.
    found = list(clients.resource.resources.list(filter="tagName eq 'labimage-build'"))
    assert [str(r.id) for r in found] == [tagged]
    assert not found[0].tags


def test_an_unfiltered_group_list_carries_tags_and_the_expanded_times(clients: Clients) -> None:
    before = time.time()
    tagged = _nsg(clients, "tagged-nsg", {"labimage-build": "b-1"})
    items = list(
        clients.resource.resources.list_by_resource_group(
            RG, expand="createdTime,changedTime,provisioningState"
        )
    )
    assert [str(i.id) for i in items] == [tagged]
    assert items[0].tags == {"labimage-build": "b-1"}
    assert items[0].created_time is not None
    assert items[0].created_time.timestamp() >= before - 1
    assert items[0].provisioning_state == "Succeeded"
    plain = list(clients.resource.resources.list_by_resource_group(RG))
    assert plain[0].created_time is None  # only present when asked for


# --- rule 4: operations take their time -----------------------------------------------------------
def test_a_slow_create_is_seen_unfinished_then_finished(clients: Clients) -> None:
    reply = clients.raw(
        "PUT",
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/"
        "slow?api-version=2024-05-01",
        {
            "location": LOCATION,
            "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}},
        },
    )
    assert reply.status_code == 201
    status = clients.raw("GET", reply.headers["Azure-AsyncOperation"])
    assert status.status_code == 200
    assert status.json()["status"] == "InProgress"
    assert status.headers["Retry-After"] == "1"
    got = clients.network.virtual_networks.get(RG, "slow")
    assert got.provisioning_state == "Updating"

    poller = clients.network.virtual_networks.begin_create_or_update(RG, "slow2", _vnet_body())
    partial = poller.result(timeout=0.3)  # azure-core hands back what it has after the timeout
    assert not poller.done()
    assert poller.status() == "InProgress"
    assert partial.provisioning_state != "Succeeded"
    final = poller.result()
    assert poller.done() and final.provisioning_state == "Succeeded"
    assert clients.raw("GET", reply.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"


def test_durations_are_real_figures_times_the_scale_unless_named() -> None:
    vm = "Microsoft.Compute/virtualMachines"
    assert operation_seconds(vm, 0) == 0
    assert operation_seconds(vm, 0.1) == pytest.approx(REAL_AZURE_SECONDS[vm.lower()] * 0.1)
    version = "Microsoft.Compute/galleries/images/versions"
    assert REAL_AZURE_SECONDS[version.lower()] > REAL_AZURE_SECONDS[vm.lower()]
    assert REAL_AZURE_SECONDS[vm.lower()] > REAL_AZURE_SECONDS[VNET]
    assert operation_seconds(vm, 0.1, {vm.lower(): 3}) == 3
    assert operation_seconds("Microsoft.Foo/bars", 1) == 0
    assert parse_override("Microsoft.Network/virtualNetworks=2.5") == (VNET, 2.5)
    with pytest.raises(ValueError):
        parse_override("virtualNetworks")


def test_the_delay_route_slows_one_method_on_one_type_only(clients: Clients) -> None:
    _nsg(clients, "quick-nsg", {})
    clients.network.virtual_networks.begin_create_or_update(RG, "vn", _vnet_body()).result()
    reply = clients.raw(
        "POST",
        "/localcloud/delay",
        {"method": "GET", "type": "Microsoft.Network/virtualNetworks", "seconds": 1.0},
    )
    assert reply.status_code == 200
    started = time.monotonic()
    clients.network.network_security_groups.get(RG, "quick-nsg")
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    clients.network.virtual_networks.get(RG, "vn")
    assert time.monotonic() - started >= 1.0
    # A call below the resource (its child list, an action) is a call on the resource's type.
    started = time.monotonic()
    list(clients.network.subnets.list(RG, "vn"))
    assert time.monotonic() - started >= 1.0
    clients.raw(
        "POST",
        "/localcloud/delay",
        {"method": "GET", "type": "Microsoft.Network/virtualNetworks", "seconds": 0},
    )
    started = time.monotonic()
    clients.network.virtual_networks.get(RG, "vn")
    assert time.monotonic() - started < 0.5
