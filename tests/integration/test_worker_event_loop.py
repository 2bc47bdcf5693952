"""Two builds at once on the Functions host's invocation path: one build's slow Resource Manager
call does not hold up the other build's SSH command.

The app's `stage_provision` function runs through localcloud's Invoker exactly as the host (and
the Python worker) runs it: an `async def` on the one shared event loop, a `def` in the thread
pool. Build A's NSG write is slowed down by the ARM emulator; meanwhile build B finishes its
provision stage, whose last act is an SSH command (`true`) to its VM. The VM is a real sshd on a
loopback address of this checkout; the emulator's VMs boot to that address.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueServiceClient

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.testing import emulator_in_thread
from localcloud.funchost.appindex import describe_function
from localcloud.funchost.invoke import Invoker, worker_thread_count
from localcloud.funchost.storage import QueueClients
from localcloud.sandbox.api import BootSpec
from shared.bus import StageMessage
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.machine import Stage
from shared.state.record import Build, BuildState, new_token
from shared.steps.base import Done, Poll, StepContext
from shared.steps.provision import provision_vm
from tests.integration.sshd_server import TEST_USER, SshdServer, running_sshd, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

RG = "labimage-test"
LOC = "westeurope"
SLOW_S = 4.0  # build A's NSG write
ROOT = Path(__file__).resolve().parents[2]
# Port 22 as on a VM; each checkout (LABIMAGE_E2E_PORT_OFFSET) its own loopback address.
_OFFSET = int(os.environ.get("LABIMAGE_E2E_PORT_OFFSET", "0") or 0)
VM_ADDRESS = f"127.0.{(_OFFSET // 100) % 200 + 20}.22"


class LoopbackRunner(MemoryRunner):
    """Every VM 'boots' to the address of the test's sshd, which stands in for the guests."""

    def boot(self, spec: BootSpec) -> str:
        super().boot(spec)
        return VM_ADDRESS


@dataclass
class Setup:
    rt: Runtime
    sshd: SshdServer
    arm_url: str
    ca_pem: Path


@pytest.fixture
def setup(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with (
        running_sshd(VM_ADDRESS, 22) as sshd,
        emulator_in_thread(tmp_path / "arm", LoopbackRunner(), retry_after=0) as (running, _),
    ):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        s = replace(settings, arm_endpoint=running.arm_url, arm_ca_bundle=str(running.ca_pem))
        rt = Runtime(s)
        rt.azure.resources.resource_groups.create_or_update(RG, {"location": LOC})
        monkeypatch.setattr("functions.pipeline.get_runtime", lambda: rt)
        monkeypatch.setenv("AzureWebJobsStorage", s.storage_connection)
        yield Setup(rt, sshd, running.arm_url, running.ca_pem)
    queues = QueueServiceClient.from_connection_string(settings.storage_connection)
    for queue in queues.list_queues():
        if queue.name.startswith("build-"):
            queues.delete_queue(queue.name)


def _request(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "owner": "alice",
        "project": "ooi",
        "image": {"name": f"img-{name}"},
        "vm": {"admin_username": TEST_USER},
    }


def _stored(rt: Runtime, build: Build) -> QueueMessage:
    """Store `build` at provision with a fresh token; the stage message that runs it."""
    token = new_token()
    build = build.model_copy(
        update={"state": BuildState.RUNNING, "stage": Stage.PROVISION, "token": token}
    )
    rt.store.create(build)
    body = StageMessage(build.id, Stage.PROVISION, token).to_json().encode()
    return QueueMessage(id=f"m-{build.id}", body=body, dequeue_count=1)


def _vm_booted(setup: Setup, build_id: str) -> Build:
    """A build whose VM runs and whose keys are the sshd's: its next provision call SSHes in."""
    rt = setup.rt
    rt.keys.save(build_id, "client", setup.sshd.client_key)
    rt.keys.save(build_id, "host", setup.sshd.host_key)
    build = Build(id=build_id, request=_request(build_id), state=BuildState.RUNNING)
    while not build.marker("provision", "build_vm_create_started"):
        outcome = asyncio.run(provision_vm(StepContext(rt.settings, build, rt.azure, rt.keys)))
        # Done when the VM's creation ended within the call and SSH answered at once.
        assert isinstance(outcome, Poll | Done)
        build = outcome.build
    return build


def _slow_down(setup: Setup, method: str, type_name: str, seconds: float) -> None:
    token = setup.rt.azure.credential.get_token(setup.rt.settings.arm_scope).token
    requests.post(
        f"{setup.arm_url}/localcloud/delay",
        json={"method": method, "type": type_name, "seconds": seconds},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(setup.ca_pem),
        timeout=10,
    ).raise_for_status()


def test_one_builds_slow_arm_call_does_not_delay_anothers_ssh_command(
    setup: Setup, app_functions: dict[str, Any]
) -> None:
    rt = setup.rt
    spec = describe_function(app_functions["stage_provision"])
    solo_message = _stored(rt, _vm_booted(setup, "bsolo00001"))
    b_message = _stored(rt, _vm_booted(setup, "bfast00001"))
    a_message = _stored(rt, Build(id="bslow00001", request=_request("bslow00001")))
    _slow_down(setup, "PUT", "Microsoft.Network/networkSecurityGroups", SLOW_S)

    async def both() -> tuple[float, float, float]:
        invoker = Invoker(str(ROOT), QueueClients(), "base64", worker_thread_count())
        try:
            started = time.monotonic()
            await invoker.invoke(spec, solo_message)  # build B's twin, alone: the baseline
            solo = time.monotonic() - started

            started = time.monotonic()
            slow = asyncio.create_task(invoker.invoke(spec, a_message))
            await asyncio.sleep(1.0)  # build A is inside its slow NSG write by now
            b_due = started + 1.0
            await invoker.invoke(spec, b_message)
            b_late = time.monotonic() - b_due - solo
            await slow
            return solo, b_late, time.monotonic() - started
        finally:
            invoker.shutdown()

    solo, b_late, a_took = asyncio.run(both())
    print(f"provision with SSH alone {solo:.2f} s; beside a slow ARM call {b_late:+.2f} s")
    for build_id in ("bsolo00001", "bfast00001"):
        moved = rt.store.get(build_id).build
        assert moved.stage == Stage.MOUNT, moved.error  # SSH answered: provision is done
    assert a_took >= SLOW_S  # the slow call really ran alongside
    assert b_late < 1.0
