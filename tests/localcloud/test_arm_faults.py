"""The fault plan served by the ARM emulator, seen through the real azure-mgmt clients.

Each fault kind is answered as Azure answers it (ARM's CloudError body, 429 with Retry-After,
a connection reset, an operation that ends Failed), and the clients' own retry policy treats
it as it would on Azure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as net
from azure.mgmt.resource.resources import ResourceManagementClient

from localcloud.arm.fault_layer import arm_key
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread
from localcloud.faults import FaultPlanError, parse_plan

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-faults"
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
        self.credential = ManagedIdentityCredential()
        self.running = running
        self.resource = ResourceManagementClient(self.credential, SUB, **options)
        self.network = NetworkManagementClient(self.credential, SUB, **options)
        self.token = self.credential.get_token("https://management.azure.com/.default").token

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.running.arm_url}/localcloud/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.running.ca_pem,
            timeout=30,
        )

    def plan(self, *rules: dict[str, Any], seed: int = 1) -> None:
        reply = self.admin("POST", "faults", {"seed": seed, "rules": list(rules)})
        assert reply.status_code == 200, reply.text

    def raw(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.running.arm_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.running.ca_pem,
            timeout=30,
        )

    def nsg(self, name: str) -> net.NetworkSecurityGroup:
        return self.network.network_security_groups.begin_create_or_update(
            RG, name, net.NetworkSecurityGroup(location=LOCATION)
        ).result()


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


NSG_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{NSG}"


# --- the plan itself ------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_faults_and_another_seed_others() -> None:
    from localcloud.faults import FaultInjector

    def decisions(seed: int) -> list[bool]:
        plan = parse_plan(
            {"seed": seed, "rules": [{"match": "GET *", "rate": 0.3, "kind": "reset"}]}
        )
        injector = FaultInjector(plan)
        return [injector.decide(f"GET {NSG}") is not None for _ in range(200)]

    first = decisions(7)
    assert first == decisions(7)
    assert first != decisions(8)
    assert 40 <= sum(first) <= 80  # about 30 % of 200


def test_a_call_of_another_kind_does_not_shift_the_faults_of_a_kind() -> None:
    from localcloud.faults import FaultInjector

    plan = parse_plan({"seed": 3, "rules": [{"match": "*", "rate": 0.5, "kind": "reset"}]})
    alone, mixed = FaultInjector(plan), FaultInjector(plan)
    seen_alone = [alone.decide("PUT A/b") is not None for _ in range(50)]
    seen_mixed = []
    for _ in range(50):
        mixed.decide("GET C/d")
        seen_mixed.append(mixed.decide("PUT A/b") is not None)
    assert seen_alone == seen_mixed


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"rules": [{"match": "*", "rate": 2, "kind": "reset"}]}, "rules[0].rate"),
        ({"rules": [{"match": "*", "kind": "explode"}]}, "rules[0].kind"),
        ({"rules": [{"match": "*", "kind": "server_error", "status": 418}]}, "rules[0].status"),
        ({"rules": [{"kind": "reset"}]}, "rules[0].match"),
        ({"rules": [{"match": "*", "kind": "delay", "seconds": -1}]}, "rules[0].seconds"),
        ({"rules": [{"match": "*", "kind": "reset", "shell": "rm"}]}, "rules[0].shell"),
        ({"ssh": {"dropRate": "often"}}, "ssh.dropRate"),
        ({"seed": "x"}, "seed"),
        ([], "plan"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(plan: Any, field: str) -> None:
    with pytest.raises(FaultPlanError, match=rf"^{field.replace('[', '.').replace(']', '.')}"):
        parse_plan(plan)


def test_calls_get_the_key_of_the_resource_type_they_are_about() -> None:
    vm = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
    assert arm_key("PUT", f"{vm}/vm1") == "PUT Microsoft.Compute/virtualMachines"
    assert arm_key("POST", f"{vm}/vm1/start") == "POST Microsoft.Compute/virtualMachines"
    assert arm_key("GET", vm) == "GET Microsoft.Compute/virtualMachines"
    assert arm_key("PUT", f"/subscriptions/{SUB}/resourcegroups/{RG}") == (
        "PUT Microsoft.Resources/resourceGroups"
    )
    status = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/1"
    assert arm_key("GET", status) == "POLL Microsoft.Compute"


# --- through the emulator -----------------------------------------------------------------------
def test_a_bad_plan_posted_at_run_time_is_a_400_naming_the_field(cloud: Cloud) -> None:
    reply = cloud.admin("POST", "faults", {"rules": [{"match": "*", "kind": "reset", "rate": 5}]})
    assert reply.status_code == 400
    assert "rules[0].rate" in reply.text


def test_a_503_has_arms_error_body_and_the_client_retries_it(cloud: Cloud) -> None:
    cloud.nsg("n1")
    cloud.plan({"match": f"GET {NSG}", "kind": "server_error", "status": 503, "count": 1})
    raw = cloud.raw("GET", f"{NSG_PATH}/n1?api-version=2024-05-01")
    assert raw.status_code == 503
    assert raw.json()["error"]["code"] == "ServiceUnavailable"
    cloud.plan({"match": f"GET {NSG}", "kind": "server_error", "status": 500, "count": 2})
    assert cloud.network.network_security_groups.get(RG, "n1").name == "n1"
    report = cloud.admin("GET", "faults").json()
    assert report["injected"][f"server_error GET {NSG}"] == 2


def test_a_429_carries_retry_after_and_the_client_waits_it_out(cloud: Cloud) -> None:
    cloud.nsg("n1")
    cloud.plan({"match": f"GET {NSG}", "kind": "throttle", "retryAfter": 1, "count": 2})
    raw = cloud.raw("GET", f"{NSG_PATH}/n1?api-version=2024-05-01")
    assert raw.status_code == 429
    assert raw.headers["Retry-After"] == "1"
    assert raw.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    started = time.monotonic()
    assert cloud.network.network_security_groups.get(RG, "n1").name == "n1"
    assert time.monotonic() - started >= 1  # the second 429, honoured


def test_a_reset_after_a_put_hides_a_change_that_happened(cloud: Cloud) -> None:
    cloud.plan({"match": f"PUT {NSG}", "kind": "reset", "when": "after", "count": 1})
    with pytest.raises(requests.ConnectionError):
        cloud.raw("PUT", f"{NSG_PATH}/lost?api-version=2024-05-01", {"location": LOCATION})
    # The reply was lost, the change was not: a retried create-or-update finds it there.
    assert cloud.network.network_security_groups.get(RG, "lost").name == "lost"


def test_a_reset_before_a_get_is_retried_by_the_client(cloud: Cloud) -> None:
    cloud.nsg("n1")
    cloud.plan({"match": f"GET {NSG}", "kind": "reset", "count": 1})
    assert cloud.network.network_security_groups.get(RG, "n1").name == "n1"
    assert cloud.admin("GET", "faults").json()["injected"] == {f"reset GET {NSG}": 1}


def test_an_operation_made_to_fail_ends_failed_with_an_arm_error(cloud: Cloud) -> None:
    cloud.plan({"match": f"PUT {NSG}", "kind": "lro_failed", "count": 1})
    with pytest.raises(HttpResponseError) as raised:
        cloud.nsg("doomed")
    assert "InternalExecutionError" in str(raised.value)
    assert cloud.nsg("doomed").name == "doomed"  # the next try goes through


def test_status_polls_fail_and_the_poller_keeps_polling(cloud: Cloud) -> None:
    cloud.plan({"match": "POLL Microsoft.Network", "kind": "server_error", "count": 2})
    assert cloud.nsg("polled").provisioning_state == "Succeeded"
    assert cloud.admin("GET", "faults").json()["injected"] == {
        "server_error POLL Microsoft.Network": 2
    }


def test_a_delay_holds_the_answer(cloud: Cloud) -> None:
    cloud.nsg("n1")
    cloud.plan({"match": f"GET {NSG}", "kind": "delay", "seconds": 1})
    started = time.monotonic()
    cloud.network.network_security_groups.get(RG, "n1")
    assert time.monotonic() - started >= 1
    cloud.plan()  # an empty plan: faults off
    started = time.monotonic()
    cloud.network.network_security_groups.get(RG, "n1")
    assert time.monotonic() - started < 0.5


def test_key_vault_calls_get_faults_too_and_the_client_retries(cloud: Cloud) -> None:
    client = SecretClient(
        cloud.running.vault_url,
        cloud.credential,
        connection_verify=str(cloud.running.ca_pem),
        retry_backoff_factor=0.05,
        verify_challenge_resource=False,
    )
    client.set_secret("k1", "v1")
    cloud.plan({"match": "VAULT GET", "kind": "server_error", "count": 2})
    assert client.get_secret("k1").value == "v1"
    assert cloud.admin("GET", "faults").json()["injected"] == {"server_error VAULT GET": 2}
