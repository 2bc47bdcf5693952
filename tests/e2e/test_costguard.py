"""Cost guards on localcloud, through the Functions host: the auto-stop timer (fired through the
admin endpoint) deallocates exactly the due VMs, one queue message each; the sweeper timer
removes a failed build's leaked NIC and disk and leaves everything else."""

# mypy: disable-error-code="call-overload"

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.mgmt.compute import models as cm
from azure.mgmt.network import models as net

from shared.state.record import Build, BuildState
from tests.e2e.conftest import Cloud
from tests.e2e.test_autostop import _power, _vm

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _wait(predicate: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return bool(predicate())


def test_the_timer_deallocates_exactly_the_due_vms_in_three_zones(cloud: Cloud) -> None:
    now = datetime.now(UTC)

    def past(offset_h: int) -> str:
        return (now + timedelta(hours=offset_h, minutes=-5)).strftime("%H:%M")

    later = (now + timedelta(hours=2)).strftime("%H:%M")
    due = {
        "cg-tokyo": {"labimage-autostop": f"{past(9)} Asia/Tokyo"},
        "cg-kolkata": {
            "labimage-autostop": f"{(now + timedelta(hours=5, minutes=25)).strftime('%H:%M')} Asia/Kolkata"
        },
        "cg-utc": {"labimage-autostop": f"{past(0)} UTC"},
    }
    kept = {
        "cg-later": {"labimage-autostop": f"{later} UTC"},
        "cg-exempt": {
            "labimage-autostop": f"{past(9)} Asia/Tokyo",
            "labimage-autostop-skip-until": (now + timedelta(days=2)).date().isoformat(),
        },
        "cg-off": {"labimage-autostop": "off"},
        "cg-bad": {"labimage-autostop": "19:00 Mars/Olympus"},
    }
    for name, tags in {**due, **kept, "cg-already": {"labimage-autostop": past(0)}}.items():
        _vm(cloud, name, tags)
    group = cloud.settings.resource_group
    cloud.azure().compute.virtual_machines.begin_deallocate(group, "cg-already").result()

    code, _ = cloud.request("POST", "/admin/functions/autostop", {"input": ""})
    assert code == 202
    assert _wait(lambda: all(_power(cloud, n) == "deallocated" for n in due), 60)
    time.sleep(2)
    for name in kept:
        assert _power(cloud, name) == "running", name
    assert _power(cloud, "cg-already") == "deallocated"

    code, body = cloud.request("GET", "/api/costs")
    assert code == 200
    assert any("Mars/Olympus" in p["message"] for p in body["problems"])


def test_the_sweeper_removes_a_failed_builds_leaked_nic_and_disk_and_leaves_the_rest(
    cloud: Cloud,
) -> None:
    azure = cloud.azure()
    group = cloud.settings.resource_group
    old = datetime.now(UTC) - timedelta(hours=5)
    cloud.store().create(
        Build(id="bleak00001", request={}, state=BuildState.FAILED, created_at=old, updated_at=old)
    )
    vnet = azure.network.virtual_networks.begin_create_or_update(
        group,
        "cg-vnet",
        net.VirtualNetwork(
            location=cloud.settings.location,
            tags={"owner": "not-labimage"},
            address_space=net.AddressSpace(address_prefixes=["10.77.0.0/16"]),
            subnets=[net.Subnet(name="default", address_prefix="10.77.0.0/24")],
        ),
    ).result()

    def nic(name: str, tags: dict[str, str]) -> str:
        made = azure.network.network_interfaces.begin_create_or_update(
            group,
            name,
            net.NetworkInterface(
                location=cloud.settings.location,
                tags=tags,
                ip_configurations=[
                    net.NetworkInterfaceIPConfiguration(
                        name="ip", subnet=net.Subnet(id=vnet.subnets[0].id)
                    )
                ],
            ),
        ).result()
        return str(made.id)

    def disk(name: str, tags: dict[str, str]) -> str:
        made = azure.compute.disks.begin_create_or_update(
            group,
            name,
            cm.Disk(
                location=cloud.settings.location,
                tags=tags,
                creation_data=cm.CreationData(create_option="Empty"),
                disk_size_gb=8,
            ),
        ).result()
        return str(made.id)

    leaked = {
        nic("bleak-nic", {"labimage-build": "bleak00001"}),
        disk("bleak-disk", {"labimage-build": "bleak00001"}),
    }
    cloud.store().create(Build(id="bbusy00001", request={}, state=BuildState.RUNNING))
    left = {
        nic("cg-untagged-nic", {}),
        disk("cg-untagged-disk", {"owner": "not-labimage"}),
        disk("bbusy-disk", {"labimage-build": "bbusy00001"}),  # its build still runs
        str(vnet.id),
    }
    code, _ = cloud.request("POST", "/admin/functions/sweeper", {"input": ""})
    assert code == 202

    def ids() -> set[str]:
        return {str(r.id).lower() for r in azure.resources.resources.list_by_resource_group(group)}

    assert _wait(lambda: not {i.lower() for i in leaked} & ids(), 120)
    assert {i.lower() for i in left} <= ids()
