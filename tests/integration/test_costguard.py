"""Cost guards against Azurite and the ARM emulator in-process, through the real azure-mgmt SDK:
the auto-stop scan queues one message per due VM and the stop deallocates exactly those; the
sweeper removes a failed build's leaked NIC and disk and leaves everything else."""

# mypy: disable-error-code="call-overload,arg-type,union-attr"

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient
from azure.mgmt.compute import models as cm
from azure.mgmt.network import models as net

from localcloud.arm.testing import emulator_in_thread
from shared import telemetry
from shared.azure.naming import BuildNames
from shared.costguard import service
from shared.costguard.actions import PROBLEM, STOP, SWEEP
from shared.costguard.autostop import AUTOSTOP_QUEUE
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.record import Build, BuildState, Resource
from shared.workstations.machine import WsState
from shared.workstations.record import Workstation, WsSpec

SUB = "00000000-0000-0000-0000-000000000000"
RG = "labimage-test"
LOC = "westeurope"


@contextmanager
def costguard_runtime(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> Iterator[Runtime]:
    """A runtime on Azurite and an in-process ARM emulator, signed in through its identity
    endpoint, with an empty auto-stop queue; its costs table is dropped afterwards."""
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with emulator_in_thread(tmp_path / "arm", retry_after=0, page_size=50) as (running, _):
        for name, value in running.identity_env().items():
            monkeypatch.setenv(name, value)
        s = replace(
            settings,
            arm_endpoint=running.arm_url,
            arm_ca_bundle=str(running.ca_pem),
            autostop_scope=(RG,),
            costs_table="costs" + settings.builds_table[-8:],
            **overrides,
        )
        runtime = Runtime(s)
        runtime.azure.resources.resource_groups.create_or_update(RG, {"location": LOC})
        runtime.bus.client(AUTOSTOP_QUEUE).clear_messages()
        yield runtime
        runtime.bus.client(AUTOSTOP_QUEUE).clear_messages()
        TableServiceClient.from_connection_string(s.storage_connection).delete_table(s.costs_table)


@pytest.fixture
def rt(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    with costguard_runtime(settings, tmp_path, monkeypatch, sweeper_grace_hours=1) as runtime:
        yield runtime


def add_records(rt: Runtime, tags_by_name: dict[str, dict[str, str]]) -> None:
    s = rt.settings
    token = rt.azure.credential.get_token(s.arm_scope).token
    for name, tags in tags_by_name.items():
        response = requests.post(
            f"{s.arm_endpoint}/localcloud/records",
            json={
                "subscription": SUB,
                "resourceGroup": RG,
                "location": LOC,
                "names": [name],
                "tags": tags,
            },
            headers={"authorization": f"Bearer {token}"},
            verify=s.arm_ca_bundle,
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text


def power(rt: Runtime, name: str) -> str:
    view = rt.azure.compute.virtual_machines.instance_view(RG, name)
    return next(str(s.code).split("/")[1] for s in view.statuses if "PowerState/" in str(s.code))


def test_scan_queues_due_vms_and_the_stop_deallocates_exactly_those(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    counted: list[tuple[str, float | None, float | None]] = []
    monkeypatch.setattr(
        telemetry, "vm_stopped", lambda rule, saving, hours: counted.append((rule, saving, hours))
    )

    def past(zone_offset_h: int) -> str:
        """A local wall time five minutes ago in a zone `zone_offset_h` ahead of UTC."""
        return (now + timedelta(hours=zone_offset_h, minutes=-5)).strftime("%H:%M")

    future = (now + timedelta(hours=2)).strftime("%H:%M")
    add_records(
        rt,
        {
            "due-tokyo": {"labimage-autostop": f"{past(9)} Asia/Tokyo", "owner": "ada"},
            "due-utc": {"labimage-autostop": past(0)},
            "later": {"labimage-autostop": f"{future} UTC"},
            "exempt": {
                "labimage-autostop": past(0),
                "labimage-autostop-skip-until": (now + timedelta(days=1)).date().isoformat(),
            },
            "off": {"labimage-autostop": "off"},
            "bad": {"labimage-autostop": "25:99 Nowhere/Land"},
            "untagged": {},
        },
    )
    rt.azure.compute.virtual_machines.begin_deallocate(RG, "due-utc").result()

    result = service.run_autostop_scan(rt, now)

    assert [q.rsplit("/", 1)[1] for q in result.queued] == ["due-tokyo"]
    assert result.already_stopped == 1 and len(result.problems) == 1
    messages = list(rt.bus.client(AUTOSTOP_QUEUE).receive_messages())
    assert len(messages) == 1
    # A redelivered message is a no-op the second time (the VM is already deallocating).
    outcomes = [service.handle_stop_message(rt, messages[0].content, now) for _ in range(2)]
    assert [o.stopped for o in outcomes] == [True, False]
    assert power(rt, "due-tokyo") == "deallocated"
    for name in ("later", "exempt", "off", "bad", "untagged"):
        assert power(rt, name) == "running", name

    actions = service.actions_of(rt)
    window = (now - timedelta(minutes=1), now + timedelta(minutes=1))
    stops = list(actions.rows(STOP, *window))
    assert [s["VmId"].rsplit("/", 1)[1] for s in stops] == ["due-tokyo"]
    assert stops[0]["Owner"] == "ada" and stops[0]["HourlySaved"] == pytest.approx(0.0104)
    problems = list(actions.rows(PROBLEM, *window))
    assert len(problems) == 1 and "25:99" in problems[0]["Message"]
    # One stop, counted once for the metrics: 14 h (the assumed stop) at the size's hourly price.
    assert counted == [("autostop", pytest.approx(0.0104 * 14), 14.0)]


def test_a_vm_deleted_between_scan_and_stop_is_a_no_op(rt: Runtime) -> None:
    now = datetime.now(UTC)
    add_records(
        rt, {"doomed": {"labimage-autostop": (now - timedelta(minutes=5)).strftime("%H:%M")}}
    )
    service.run_autostop_scan(rt, now)
    (message,) = list(rt.bus.client(AUTOSTOP_QUEUE).receive_messages())
    rt.azure.compute.virtual_machines.begin_delete(RG, "doomed").result()
    outcome = service.handle_stop_message(rt, message.content, now)
    assert not outcome.stopped and "no longer exists" in outcome.reason


def _network(rt: Runtime, build_id: str) -> str:
    tags = {"labimage-build": build_id}
    vnet = rt.azure.network.virtual_networks.begin_create_or_update(
        RG,
        f"{build_id}-vnet",
        net.VirtualNetwork(
            location=LOC,
            tags=tags,
            address_space=net.AddressSpace(address_prefixes=["10.9.0.0/16"]),
            subnets=[net.Subnet(name="default", address_prefix="10.9.0.0/24")],
        ),
    ).result()
    return str(vnet.subnets[0].id)


def _nic(rt: Runtime, name: str, subnet: str, tags: dict[str, str]) -> str:
    nic = rt.azure.network.network_interfaces.begin_create_or_update(
        RG,
        name,
        net.NetworkInterface(
            location=LOC,
            tags=tags,
            ip_configurations=[
                net.NetworkInterfaceIPConfiguration(name="ip", subnet=net.Subnet(id=subnet))
            ],
        ),
    ).result()
    return str(nic.id)


def _disks(rt: Runtime, nic_id: str, tagged: dict[str, dict[str, str]]) -> dict[str, str]:
    """Disks that outlive their VM (the emulator makes disks only through a VM): a VM whose
    disks detach on delete is made and deleted, then each disk gets its tags. Name -> id."""
    names = list(tagged)
    vm = cm.VirtualMachine(
        location=LOC,
        hardware_profile=cm.HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=cm.StorageProfile(
            image_reference=cm.ImageReference(
                publisher="Canonical", offer="ubuntu-24_04-lts", sku="server", version="latest"
            ),
            os_disk=cm.OSDisk(name=names[0], create_option="FromImage", delete_option="Detach"),
            data_disks=[
                cm.DataDisk(
                    lun=i, name=n, create_option="Empty", disk_size_gb=8, delete_option="Detach"
                )
                for i, n in enumerate(names[1:])
            ],
        ),
        os_profile=cm.OSProfile(
            computer_name="diskmaker",
            admin_username="azureuser",
            linux_configuration=cm.LinuxConfiguration(
                disable_password_authentication=True,
                ssh=cm.SshConfiguration(
                    public_keys=[
                        cm.SshPublicKey(
                            path="/home/azureuser/.ssh/authorized_keys",
                            key_data="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000 t",
                        )
                    ]
                ),
            ),
        ),
        network_profile=cm.NetworkProfile(
            network_interfaces=[cm.NetworkInterfaceReference(id=nic_id, primary=True)]
        ),
    )
    rt.azure.compute.virtual_machines.begin_create_or_update(RG, "diskmaker", vm).result()
    rt.azure.compute.virtual_machines.begin_delete(RG, "diskmaker").result()
    ids = {}
    for name, tags in tagged.items():
        disk = rt.azure.compute.disks.get(RG, name)
        disk.tags = tags
        ids[name] = str(rt.azure.compute.disks.begin_create_or_update(RG, name, disk).result().id)
    return ids


def _exists(rt: Runtime, resource_id: str) -> bool:
    items: list[Any] = list(rt.azure.resources.resources.list_by_resource_group(RG))
    return any(str(i.id).lower() == resource_id.lower() for i in items)


def test_sweeper_removes_a_failed_builds_leaks_and_leaves_everything_else(rt: Runtime) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=3)
    failed = {"labimage-build": "bfailed0001"}
    ok = {"labimage-build": "bkept00001"}
    subnet = _network(rt, "shared")  # tagged with a build id of its own, see below
    leaked_nic = _nic(rt, "bfailed-nic", subnet, failed)
    disks = _disks(
        rt,
        leaked_nic,
        {
            "bfailed-disk": failed,
            "bkept-disk": ok,
            "bkept-stray": ok,
            "someone-elses": {"owner": "not-labimage"},
            "brun-disk": {"labimage-build": "brunning01"},
        },
    )
    leaked_disk, kept_disk, stray_disk = (
        disks[n] for n in ("bfailed-disk", "bkept-disk", "bkept-stray")
    )
    untagged, running_disk = disks["someone-elses"], disks["brun-disk"]
    add_records(rt, {"bkept-vm": {**ok, "labimage-autostop": "19:00"}})
    store = rt.store
    store.create(
        Build(id="bfailed0001", request={}, state=BuildState.FAILED, created_at=old, updated_at=old)
    )
    store.create(
        Build(
            id="bkept00001",
            request={},
            state=BuildState.SUCCEEDED,
            created_at=old,
            updated_at=old,
            resources=[Resource(type="Microsoft.Compute/disks", id=kept_disk, kept=True)],
        )
    )
    store.create(Build(id="brunning01", request={}, state=BuildState.RUNNING, created_at=old))
    store.create(Build(id="shared", request={}, state=BuildState.RUNNING, created_at=old))

    result = service.sweeper.sweep(
        rt.azure,
        store,
        service.actions_of(rt),
        now,
        grace=timedelta(hours=1),
        sleep=lambda s: None,
    )

    assert sorted(result.deleted) == sorted([leaked_nic, leaked_disk, stray_disk])
    assert not result.failed
    for rid in (leaked_nic, leaked_disk, stray_disk):
        assert not _exists(rt, rid)
    for rid in (kept_disk, untagged, running_disk):
        assert _exists(rt, rid), rid
    assert power(rt, "bkept-vm") == "running"
    rows = list(
        service.actions_of(rt).rows(SWEEP, now - timedelta(minutes=1), now + timedelta(minutes=1))
    )
    assert {r["ResourceId"] for r in rows if r["Outcome"] == "deleted"} == set(result.deleted)


def _empty_disk(rt: Runtime, name: str, tags: dict[str, str], option: str = "Empty") -> str:
    disk = cm.Disk(
        location=LOC,
        tags=tags,
        sku=cm.DiskSku(name="Premium_LRS"),
        creation_data=cm.CreationData(create_option=option),
        disk_size_gb=16,
    )
    return str(rt.azure.compute.disks.begin_create_or_update(RG, name, disk).result().id)


def test_sweeper_removes_what_a_deleted_workstation_left_and_nothing_of_a_live_one(
    rt: Runtime,
) -> None:
    """A workstation whose delete failed midway: its disk outlives the record's `deleted`.
    The sweeper (as the timer runs it) takes it once the grace period is over, and leaves the
    disks of a running workstation and of one deleted only now."""
    now = datetime.now(UTC)
    old = now - timedelta(hours=rt.settings.sweeper_grace_hours + 1)
    spec = WsSpec(image_id="/subscriptions/x/images/i", image_source="image_id", size="B2s")
    wstore = rt.store.workstations()
    for ws_id, state, at in (
        ("wgone00001", WsState.DELETED, old),
        ("wlive00001", WsState.RUNNING, old),
        ("wjust00001", WsState.DELETED, now),
    ):
        wstore.create(
            Workstation(id=ws_id, owner="o", spec=spec, state=state, created_at=old, updated_at=at)
        )
    disk = {
        n: _empty_disk(rt, f"{n}-disk", {"labimage-workstation": n})
        for n in ("wgone00001", "wlive00001", "wjust00001")
    }

    result = service.run_sweeper(rt, now)

    assert result.deleted == [disk["wgone00001"]]
    assert not _exists(rt, disk["wgone00001"])
    assert _exists(rt, disk["wlive00001"]) and _exists(rt, disk["wjust00001"])
    assert sorted(result.waiting) == ["wjust00001", "wlive00001"]
    rows = list(
        service.actions_of(rt).rows(SWEEP, now - timedelta(minutes=1), now + timedelta(minutes=1))
    )
    assert [(r["ResourceId"], r["BuildId"]) for r in rows] == [(disk["wgone00001"], "wgone00001")]


def test_a_stand_alone_empty_disk_is_made_unattached_and_other_creates_are_refused(
    rt: Runtime,
) -> None:
    disk_id = _empty_disk(rt, "loose-disk", {"labimage-build": "bloose0001"})
    disk = rt.azure.compute.disks.get(RG, "loose-disk")
    assert disk.id == disk_id and disk.disk_state == "Unattached" and not disk.managed_by
    assert disk.disk_size_gb == 16 and disk.tags == {"labimage-build": "bloose0001"}
    assert _exists(rt, disk_id)
    with pytest.raises(HttpResponseError) as refused:
        _empty_disk(rt, "copied-disk", {}, option="Copy")
    assert refused.value.status_code == 400 and "createOption" in str(refused.value)
    rt.azure.compute.disks.begin_delete(RG, "loose-disk").result()
    assert not _exists(rt, disk_id)


async def test_idle_stop_judges_each_vm_alone_and_never_acts_on_a_vm_carrying_a_copied_tag(
    rt: Runtime,
) -> None:
    now = datetime.now(UTC)
    build_id = "bkept00002"
    rt.store.create(Build(id=build_id, request={}, state=BuildState.SUCCEEDED, created_at=now))
    kept = {"labimage-build": build_id, "labimage-autostop": "19:00", "labimage-role": "relaunch"}
    own_name = BuildNames(build_id).vm("relaunch").vm
    add_records(
        rt,
        {
            "someone-elses": dict(kept),  # the build's tags copied onto another VM
            own_name: {**kept, "labimage-idle-minutes": "99999999999999"},  # overflow bait
        },
    )

    result = await service.run_idle(rt, now)

    problems = {p.split(": ", 1)[0].rsplit("/", 1)[1]: p for p in result.problems}
    assert set(problems) == {"someone-elses", own_name}
    assert "is not that build's VM" in problems["someone-elses"]
    assert "above the maximum" in problems[own_name]
    assert not result.stopped
    assert power(rt, "someone-elses") == power(rt, own_name) == "running"
