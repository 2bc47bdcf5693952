"""The cost guards under the roles the deployment grants (infra/roles.json), enforced by the ARM
emulator: what works on Azure with those roles works here, and nothing more.

An extra auto-stop group holds only the VM stopper role: list, deallocate, and (for a snooze)
`Microsoft.Resources/tags/write`. A snooze that PATCHed the VM would need
`Microsoft.Compute/virtualMachines/write` there, which Azure refuses with 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.resource.resources import ResourceManagementClient

from localcloud.arm.testing import emulator_in_thread
from localcloud.instance import CONTROLLER_CLIENT_ID, DEPLOYER_CLIENT_ID
from localcloud.roles import ROLES_FILE, authorization_document
from shared.api.caller import Caller
from shared.costguard import service
from shared.costguard.schedule import SKIP_TAG, SNOOZE_TAG
from shared.runtime import Runtime
from shared.settings import Settings

BUILD_GROUP = "labimage-test"
TEAM_GROUP = "team-vms"  # an extra auto-stop group: the VM stopper role only
LOC = "westeurope"


@pytest.fixture
def rt(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    roles = json.loads(ROLES_FILE.read_text())
    document = authorization_document(
        roles, settings.subscription_id, BUILD_GROUP, [BUILD_GROUP, TEAM_GROUP]
    )
    authorization = tmp_path / "authorization.json"
    authorization.write_text(json.dumps(document))
    with emulator_in_thread(tmp_path / "arm", retry_after=0, authorization_file=authorization) as (
        running,
        _,
    ):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        s = replace(
            settings,
            resource_group=BUILD_GROUP,
            arm_endpoint=running.arm_url,
            arm_ca_bundle=str(running.ca_pem),
            autostop_scope=(BUILD_GROUP, TEAM_GROUP),
            managed_identity_client_id=CONTROLLER_CLIENT_ID,
        )
        deployer = ResourceManagementClient(
            ManagedIdentityCredential(client_id=DEPLOYER_CLIENT_ID),
            s.subscription_id,
            base_url=running.arm_url,
            connection_verify=str(running.ca_pem),
        )
        for group in (BUILD_GROUP, TEAM_GROUP):
            deployer.resource_groups.create_or_update(group, {"location": LOC})
        yield Runtime(s)


def add_vm(rt: Runtime, group: str, name: str, tags: dict[str, str]) -> None:
    """A VM record through the emulator's admin route (not an ARM call: no role needed)."""
    s = rt.settings
    response = requests.post(
        f"{s.arm_endpoint}/localcloud/records",
        json={
            "subscription": s.subscription_id,
            "resourceGroup": group,
            "location": LOC,
            "names": [name],
            "tags": tags,
        },
        headers={"authorization": f"Bearer {rt.azure.credential.get_token(s.arm_scope).token}"},
        verify=s.arm_ca_bundle,
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text


def test_the_controller_identity_may_not_make_resource_groups(rt: Runtime) -> None:
    with pytest.raises(HttpResponseError) as caught:
        rt.azure.resources.resource_groups.create_or_update("anything", {"location": LOC})
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "AuthorizationFailed"


@pytest.mark.parametrize("group", [TEAM_GROUP, BUILD_GROUP])
def test_a_snooze_sets_its_tag_with_the_roles_of_the_vms_group(rt: Runtime, group: str) -> None:
    now = datetime.now(UTC)
    due = f"{(now - timedelta(minutes=5)).strftime('%H:%M')} UTC"
    add_vm(rt, group, "desk", {"labimage-autostop": due, "owner": "ada"})
    response = service.snooze_api(
        rt, group, "desk", {"hours": "2"}, now, Caller.with_function_key()
    )
    assert response.status == 200, response.body
    tags = rt.azure.compute.virtual_machines.get(group, "desk").tags or {}
    assert tags["labimage-autostop"] == due and tags["owner"] == "ada"
    assert tags.get(SNOOZE_TAG) or tags.get(SKIP_TAG)


def test_a_snooze_past_midnight_drops_the_old_snooze_tag_and_skips_today(rt: Runtime) -> None:
    now = datetime.now(UTC)
    offset = 12 - now.hour  # a zone where it is about noon now
    zone = "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    local = now.astimezone(ZoneInfo(zone))
    snoozed_until = local.replace(hour=20, minute=0, second=0, microsecond=0)
    add_vm(
        rt,
        TEAM_GROUP,
        "late",
        {"labimage-autostop": f"11:00 {zone}", SNOOZE_TAG: snoozed_until.isoformat()},
    )
    response = service.snooze_api(
        rt, TEAM_GROUP, "late", {"hours": "12"}, now, Caller.with_function_key()
    )
    assert response.status == 200, response.body
    assert response.body["skipped_today"] is True
    tags = rt.azure.compute.virtual_machines.get(TEAM_GROUP, "late").tags or {}
    assert tags == {"labimage-autostop": f"11:00 {zone}", SKIP_TAG: local.date().isoformat()}
