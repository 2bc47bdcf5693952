"""The auto-stop timer, fired through the host's admin endpoint, against the emulator's VMs."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _vm(cloud: Cloud, name: str, tags: dict[str, str]) -> None:
    """A running VM that is a record only (no sandbox): all a scheduler needs to see."""
    s = cloud.settings
    azure = cloud.azure()
    token = azure.credential.get_token(s.arm_scope).token
    body = json.dumps(
        {
            "subscription": s.subscription_id,
            "resourceGroup": s.resource_group,
            "location": s.location,
            "names": [name],
            "tags": tags,
        }
    ).encode()
    request = urllib.request.Request(
        f"{s.arm_endpoint}/localcloud/records",
        data=body,
        method="POST",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    context = ssl.create_default_context(cafile=s.arm_ca_bundle)
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        assert response.status in (200, 201, 202)


def _power(cloud: Cloud, name: str) -> str:
    view = cloud.azure().compute.virtual_machines.instance_view(cloud.settings.resource_group, name)
    return next(
        str(s.code).split("/", 1)[1]
        for s in view.statuses or []
        if str(s.code).startswith("PowerState/")
    )


def test_the_timer_deallocates_due_vms_and_leaves_exempt_ones(cloud: Cloud) -> None:
    now = datetime.now(UTC)
    # A stop time that passed a minute ago, in Tokyo; and one that has not come yet, in UTC.
    tokyo = (now + timedelta(hours=9) - timedelta(minutes=1)).strftime("%H:%M")
    # Two hours from now: not yet today, and yesterday's is far past the catch-up window.
    later = (now + timedelta(hours=2)).strftime("%H:%M")
    _vm(cloud, "as-due", {"labimage-autostop": f"{tokyo} Asia/Tokyo"})
    _vm(
        cloud,
        "as-skip",
        {
            "labimage-autostop": f"{tokyo} Asia/Tokyo",
            "labimage-autostop-skip-until": (now + timedelta(days=2)).date().isoformat(),
        },
    )
    _vm(cloud, "as-off", {"labimage-autostop": "off"})
    _vm(cloud, "as-later", {"labimage-autostop": f"{later} UTC"})
    _vm(cloud, "as-bad", {"labimage-autostop": "7pm Mars/Olympus"})
    assert {_power(cloud, n) for n in ("as-due", "as-skip", "as-off", "as-later")} == {"running"}

    code, _ = cloud.request("POST", "/admin/functions/autostop", {"input": ""})
    assert code == 202
    deadline = time.monotonic() + 30
    while _power(cloud, "as-due") != "deallocated" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _power(cloud, "as-due") == "deallocated"
    time.sleep(1)
    for name in ("as-skip", "as-off", "as-later", "as-bad"):
        assert _power(cloud, name) == "running", name
