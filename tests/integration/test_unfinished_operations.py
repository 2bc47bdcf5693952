"""The controller never builds on an unfinished long-running operation.

Against the ARM emulator with network and gallery writes that take longer than the controller
waits in one call: the network helpers and the provision step answer "not yet" (Poll) and
finish on a later call, and nothing is created on top of a resource still being written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from localcloud.arm.testing import emulator_in_thread
from shared.azure import images, lro, network
from shared.azure.naming import BuildNames
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.record import Build, BuildState
from shared.steps import vm_access
from shared.steps.base import Poll, StepContext
from shared.steps.provision import provision_vm

T = TypeVar("T")
RG = "labimage-test"
LOC = "westeurope"
SLOW_S = 0.8  # each network and gallery write; the controller waits WAIT_S per call
WAIT_S = 0.1
SLOW_TYPES = (
    "microsoft.network/networksecuritygroups",
    "microsoft.network/virtualnetworks",
    "microsoft.network/publicipaddresses",
    "microsoft.network/networkinterfaces",
    "microsoft.compute/galleries",
    "microsoft.compute/galleries/images",
)


@pytest.fixture
def rt(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(lro, "LRO_WAIT_S", WAIT_S)
    # The wait lived in each module before shared.azure.lro; keep it short there too.
    monkeypatch.setattr(network, "LRO_WAIT_S", WAIT_S, raising=False)
    monkeypatch.setattr(images, "LRO_WAIT_S", WAIT_S, raising=False)
    slow = dict.fromkeys(SLOW_TYPES, SLOW_S)
    with emulator_in_thread(tmp_path / "arm", retry_after=0, lro_seconds=slow) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        s = replace(settings, arm_endpoint=running.arm_url, arm_ca_bundle=str(running.ca_pem))
        runtime = Runtime(s)
        runtime.azure.resources.resource_groups.create_or_update(RG, {"location": LOC})
        yield runtime


def _until_done(call: Callable[[], T | None], limit_s: float = 15) -> tuple[T, int]:
    """Call until it answers something; (the answer, how many calls it took)."""
    deadline = time.monotonic() + limit_s
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        answer = call()
        if answer is not None:
            return answer, calls
        time.sleep(0.2)
    raise AssertionError(f"still not done after {calls} calls")


def _state(get: Callable[[], Any]) -> str:
    return lro.provisioning_state(get())


def test_the_network_is_reported_only_once_resource_manager_finished_it(rt: Runtime) -> None:
    names = BuildNames("bslow0001")
    net = rt.azure.network
    tags = {"labimage-build": "bslow0001"}

    first = network.ensure_network(rt.azure, names, tags, "*")
    assert first is None  # the NSG is still being created: nothing to build on yet

    subnet_id, calls = _until_done(lambda: network.ensure_network(rt.azure, names, tags, "*"))
    assert calls >= 2
    assert _state(lambda: net.virtual_networks.get(RG, names.vnet)) == "Succeeded"
    assert _state(lambda: net.network_security_groups.get(RG, names.nsg)) == "Succeeded"
    assert subnet_id.lower().endswith(f"/subnets/{names.subnet}".lower())

    vm = names.vm("build")
    assert network.ensure_vm_nic(rt.azure, vm, subnet_id, tags) is None
    (nic_id, ip_id), _ = _until_done(lambda: network.ensure_vm_nic(rt.azure, vm, subnet_id, tags))
    assert _state(lambda: net.network_interfaces.get(RG, vm.nic)) == "Succeeded"
    assert _state(lambda: net.public_ip_addresses.get(RG, vm.public_ip)) == "Succeeded"
    assert nic_id.lower().endswith(vm.nic.lower()) and ip_id.lower().endswith(vm.public_ip.lower())


def test_a_gallery_definition_still_being_created_is_not_built_on(rt: Runtime) -> None:
    identifier = {"publisher": "labimage", "offer": "ooi", "sku": "jupyter"}

    def ensure() -> bool | None:
        needs = images.DefinitionNeeds("V2", "Standard", False)
        done = images.ensure_gallery_definition(rt.azure, "gal", "jupyter", identifier, {}, needs)
        return True if done else None

    assert ensure() is None
    _, calls = _until_done(ensure)
    assert calls >= 2
    got = rt.azure.compute.gallery_images.get(RG, "gal", "jupyter")
    assert lro.provisioning_state(got) == "Succeeded"


def test_provision_polls_until_the_network_exists_before_making_the_vm(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The VM here is a record at a documentation address: SSH never answers it.
    monkeypatch.setattr(vm_access, "SSH_WAIT_S", 1)
    request = {"name": "slow", "owner": "alice", "project": "ooi", "image": {"name": "img-slow"}}
    build = Build(id="bslow0002", request=request, state=BuildState.RUNNING)
    notes: list[str] = []
    for _ in range(60):
        ctx = StepContext(rt.settings, build, rt.azure, rt.keys)
        outcome = asyncio.run(provision_vm(ctx))
        assert isinstance(outcome, Poll)
        notes.append(outcome.note)
        build = outcome.build
        if build.marker("provision", "build_vm_create_started"):
            break
        time.sleep(0.2)
    assert notes[0].startswith("creating the network")
    assert any(n.startswith("creating the IP and NIC") for n in notes)
    # The VM's creation is waited for in the same invocation when it ends soon enough.
    assert notes[-1].startswith(("creating VM", "waiting for SSH"))
    assert any(e.message.startswith("creating VM") for e in build.events)
    names = BuildNames(build.id)
    vm = names.vm("build")
    nic = rt.azure.network.network_interfaces.get(RG, vm.nic)
    assert lro.provisioning_state(nic) == "Succeeded"
    recorded = {r.type for r in build.resources}
    assert {
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Compute/virtualMachines",
    } <= recorded
