"""How the controller's Resource Manager layer (shared.azure) takes each fault of localcloud's
fault plan: transient ones become TemporaryError (the stage retries within its budget), and a
retried create finds what an earlier, failed-looking attempt already made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as net
from azure.mgmt.resource.resources import ResourceManagementClient

from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread, post_admin
from shared.azure.lro import ensure
from shared.errors import TemporaryError

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-fault-handling"
LOCATION = "westeurope"
NSG = "Microsoft.Network/networkSecurityGroups"


class Cloud:
    def __init__(self, running: RunningEmulator) -> None:
        options = {
            "base_url": running.arm_url,
            "connection_verify": str(running.ca_pem),
            "polling_interval": 0.05,
            "retry_backoff_factor": 0.05,
        }
        credential = ManagedIdentityCredential()
        self.running = running
        self.resource = ResourceManagementClient(credential, SUB, **options)
        self.network = NetworkManagementClient(credential, SUB, **options)

    def plan(self, *rules: dict[str, object]) -> None:
        post_admin(self.running, "faults", {"seed": 1, "rules": list(rules)})


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with emulator_in_thread(tmp_path, MemoryRunner(), retry_after=0) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        azure = Cloud(running)
        azure.resource.resource_groups.create_or_update(RG, {"location": LOCATION})
        yield azure


def _ensure_nsg(cloud: Cloud, name: str) -> net.NetworkSecurityGroup | None:
    return ensure(
        f"network security group {name}",
        lambda: cloud.network.network_security_groups.get(RG, name),
        lambda: cloud.network.network_security_groups.begin_create_or_update(
            RG, name, net.NetworkSecurityGroup(location=LOCATION)
        ),
    )


def test_an_operation_that_ends_failed_with_an_internal_error_is_retried(cloud: Cloud) -> None:
    cloud.plan({"match": f"PUT {NSG}", "kind": "lro_failed", "count": 1})
    with pytest.raises(TemporaryError, match="InternalExecutionError"):
        _ensure_nsg(cloud, "nsg1")
    made = _ensure_nsg(cloud, "nsg1")  # the stage's next try
    assert made is not None and made.name == "nsg1"


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "throttle", "retryAfter": 1},
        {"kind": "server_error", "status": 500},
        {"kind": "server_error", "status": 503},
        {"kind": "reset", "when": "after"},
    ],
)
def test_a_refused_create_past_the_clients_retries_is_temporary(
    cloud: Cloud, rule: dict[str, object]
) -> None:
    # More refusals than azure-core's own retries (3 by default, backoff shortened here).
    cloud.plan({"match": f"PUT {NSG}", "count": 10, **rule})
    with pytest.raises(TemporaryError):
        _ensure_nsg(cloud, "nsg2")
    cloud.plan()
    made = _ensure_nsg(cloud, "nsg2")
    assert made is not None and made.name == "nsg2"
