"""Workstations against Azurite and the in-process ARM emulator, through the real azure-mgmt
SDK and the app's registered functions: validation and who may do what, the creation steps
from a captured image, stop and start, the quota, the auto-stop hook, snooze, and a delete
that leaves nothing behind. (The emulator's in-memory VMs run no sshd: the SSH and Jupyter
check on a real guest is the e2e test's part.)"""

# mypy: disable-error-code="union-attr"

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.mgmt.compute import models as cm
from test_costguard import LOC, RG, costguard_runtime
from test_function_app import ROOT, call, http

from shared import runtime as runtime_module
from shared.azure import images, network, vms
from shared.azure.naming import BUILD_TAG, BuildNames
from shared.costguard import service
from shared.costguard.autostop import AUTOSTOP_QUEUE
from shared.runtime import Runtime
from shared.settings import Settings
from shared.ssh.keys import generate_keypair, host_key_cloud_config
from shared.state.record import Build, BuildState
from shared.workstations.guard import run_guard
from shared.workstations.link_pages import warning_extras
from shared.workstations.machine import WORK_QUEUES, WsState
from shared.workstations.record import Workstation, WsSpec
from shared.workstations.runner import WsMessage, handle_message, prepare
from tests.principals import ADMIN, ALICE, BOB, object_id_of

SEED_VM = {
    "publisher": "Canonical",
    "offer": "ubuntu-24_04-lts",
    "sku": "server",
    "version": "latest",
}


@pytest.fixture
def rt(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_functions: Any
) -> Iterator[Runtime]:
    with costguard_runtime(
        settings,
        tmp_path,
        monkeypatch,
        workstation_link_key="test-link-key-" + "x" * 20,
        public_url="http://127.0.0.1:7071",
    ) as runtime:
        for queue in WORK_QUEUES.values():
            runtime.bus.client(queue).clear_messages()
        monkeypatch.setattr(runtime_module, "get_runtime", lambda: runtime)
        monkeypatch.setattr("functions.workstations.get_runtime", lambda: runtime)
        monkeypatch.setattr("functions.costguard.get_runtime", lambda: runtime)
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
        yield runtime


def _image(rt: Runtime) -> str:
    """A managed image captured from a generalized VM, as build `bimage0001`'s capture makes
    it (the build's record is not made here)."""
    names = BuildNames("bimage0001")
    vm = names.vm("build")
    subnet = None
    while subnet is None:
        subnet = network.ensure_network(rt.azure, names, {}, "127.0.0.1/32")
    made = None
    while made is None:
        made = network.ensure_vm_nic(rt.azure, vm, subnet, {})
    host, client = generate_keypair("h"), generate_keypair("c")
    spec = vms.VmSpec(
        names=vm,
        size="Standard_D2s_v5",
        admin_username="azureuser",
        ssh_public_key=client.public_line,
        custom_data=host_key_cloud_config(host.private_openssh, host.public_line),
        nic_id=made[0],
        tags={},
        data_disk_lun=0,
        data_disk_size_gb=IMAGE_DATA_DISK["size_gb"],
        platform_image=SEED_VM,
    )
    vms.begin_create_vm(rt.azure, spec)
    compute = rt.azure.compute.virtual_machines
    _until(lambda: vms.vm_state(rt.azure, vm.vm).running)
    compute.begin_deallocate(RG, vm.vm).result()
    compute.generalize(RG, vm.vm)
    image = rt.azure.compute.images.begin_create_or_update(
        RG,
        "ws-test-image",
        cm.Image(
            location=LOC,
            tags={BUILD_TAG: "bimage0001"},
            source_virtual_machine=cm.SubResource(id=vms.vm_id(rt.azure, vm.vm)),
        ),
    ).result()
    compute.begin_delete(RG, vm.vm).result()
    return str(image.id)


IMAGE_DATA_DISK = {"size_gb": 32, "lun": 0, "mount_point": "/datadrive", "filesystem": "xfs"}


def _build_of_image(rt: Runtime, owner: str) -> None:
    """The record of build `bimage0001`, which made `_image`'s image, as `owner`'s own."""
    rt.store.create(
        Build(
            id="bimage0001",
            request={"name": "ooi-jupyter", "data_disk": IMAGE_DATA_DISK},
            owner=owner,
            owner_id=object_id_of(owner),
            state=BuildState.SUCCEEDED,
            outputs={"image_id": "made-by-_image"},
        )
    )


def _gallery_version(rt: Runtime, image_id: str) -> str:
    """A gallery image version published from `image_id` by build `bimage0001`."""
    image = rt.azure.compute.images.get(RG, image_id.rsplit("/", 1)[1])
    generation = getattr(image.hyper_v_generation, "value", image.hyper_v_generation)
    needs = images.DefinitionNeeds(str(generation or "V1"), "Standard", nvme=False)
    identifier = {"publisher": "labimage", "offer": "ws", "sku": "jupyter"}
    while not images.ensure_gallery_definition(
        rt.azure, "ws_gallery", "jupyter", identifier, {}, needs
    ):
        time.sleep(0.2)
    images.begin_create_gallery_version(
        rt.azure, "ws_gallery", "jupyter", "1.0.0", image_id, {BUILD_TAG: "bimage0001"}
    ).result()
    _, version_id = images.gallery_version_state(rt.azure, "ws_gallery", "jupyter", "1.0.0")
    assert version_id
    return version_id


def _until(check: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _pump(rt: Runtime, ws_id: str, until: Any, timeout_s: float = 90) -> Any:
    """Deliver the workstation's queue messages (as the host does) until `until(ws)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        ws = rt.store.workstations().get(ws_id).ws
        if until(ws):
            return ws
        assert time.monotonic() < deadline, f"stuck: {ws.state} {ws.events[-1:]}"
        for queue in set(WORK_QUEUES.values()):
            for message in rt.bus.client(queue).receive_messages(max_messages=8):
                asyncio.run(handle_message(rt, message.content))
                rt.bus.client(queue).delete_message(message)
        time.sleep(0.3)


def _post(
    functions: Any, name: str, path: str, body: Any = None, who: Any = ALICE, **kw: Any
) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    method = (
        "DELETE"
        if name.startswith("delete")
        else ("GET" if name.startswith(("get", "list")) else "POST")
    )
    response = call(functions, name)(http(method, path, data, who=who, **kw))
    return response.status_code, json.loads(response.get_body())


def _running(rt: Runtime, ws_id: str, now: datetime) -> None:
    """Record the workstation as verified and running since `now` (no sshd on memory VMs)."""
    store = rt.store.workstations()
    stored = store.get(ws_id)
    counted = stored.ws.usage.model_copy(update={"running_since": now})
    store.replace(
        stored,
        stored.ws.model_copy(update={"state": WsState.RUNNING, "token": "", "usage": counted}),
    )


def _group_resources(rt: Runtime) -> list[str]:
    return sorted(str(r.name) for r in rt.azure.resources.resources.list_by_resource_group(RG))


def test_bad_requests_are_refused_naming_the_field(rt: Runtime, app_functions: Any) -> None:
    cases = [
        ({"owner": "alice@example.org"}, "image"),
        ({"owner": "alice@example.org", "image": {"build": "x", "image_id": "/y"}}, "image"),
        ({"owner": "alice@example.org", "image": {"image_id": "/etc/passwd"}}, "image.image_id"),
        (
            {"owner": "alice@example.org", "image": {"build": "x"}, "monthly_hours": 0},
            "monthly_hours",
        ),
        ({"owner": "alice@example.org", "image": {"build": "x"}, "size": "a;rm"}, "size"),
        ({"owner": "alice@example.org", "image": {"build": "nope"}}, "image.build"),
        ({"owner": "bob@example.org", "image": {"build": "x"}}, "owner"),
    ]
    for body, field in cases:
        status, answer = _post(app_functions, "create_workstation", "workstations", body)
        assert status == 400, (body, answer)
        assert answer["problems"][0]["field"] == field, (body, answer)
    status, answer = _post(
        app_functions,
        "create_workstations",
        "workstations:batch",
        {"owners": ["a", "a"], "image": {"build": "x"}},
        who=ADMIN,
    )
    assert status == 400 and answer["problems"][0]["field"] == "owners[1]"
    status, answer = _post(
        app_functions,
        "create_workstations",
        "workstations:batch",
        {"owners": ["a"], "image": {"build": "x"}},
    )
    assert status == 403
    assert rt.store.workstations().list() == []


def test_a_larger_data_disk_is_checked_against_the_image_and_made_at_its_size(
    rt: Runtime, app_functions: Any
) -> None:
    image_id = _image(rt)
    body = {"owner": "alice@example.org", "image": {"image_id": image_id}}

    def create(size_gb: int) -> tuple[int, Any]:
        disk = {"data_disk": {"size_gb": size_gb}}
        return _post(app_functions, "create_workstation", "workstations", {**body, **disk}, ADMIN)

    status, answer = create(64)  # no build on record made this image: its disk is unknown
    assert status == 400 and answer["problems"][0]["field"] == "data_disk", answer
    _build_of_image(rt, "alice@example.org")
    status, answer = create(16)
    assert status == 400 and answer["problems"][0]["field"] == "data_disk.size_gb", answer
    assert "at least 32 GB" in answer["problems"][0]["message"]
    assert rt.store.workstations().list() == []

    status, made = create(64)
    assert status == 202, made
    _pump(rt, made["id"], lambda w: any("waiting for SSH" in e.message for e in w.events))
    vm = rt.azure.compute.virtual_machines.get(RG, f"labimage-{made['id']}-ws")
    (disk,) = vm.storage_profile.data_disks
    assert (disk.lun, disk.disk_size_gb, disk.create_option) == (0, 64, "FromImage")
    path = f"workstations/{made['id']}"
    _, shown = _post(app_functions, "get_workstation", path, who=ADMIN, id=made["id"])
    assert shown["data_disk"] == {**IMAGE_DATA_DISK, "size_gb": 64}


def test_a_managed_image_with_an_nvme_only_size_is_refused_naming_the_size(
    rt: Runtime, app_functions: Any
) -> None:
    body = {"owner": "alice@example.org", "image": {"image_id": _image(rt)}}
    status, answer = _post(
        app_functions,
        "create_workstation",
        "workstations",
        {**body, "size": "Standard_D2ads_v6"},
        who=ADMIN,
    )
    assert status == 400, answer
    assert answer["problems"][0]["field"] == "size"
    assert "v5 size" in answer["problems"][0]["message"]
    assert rt.store.workstations().list() == []


def test_a_batch_from_a_build_runs_stops_on_quota_and_autostop_snoozes_and_deletes_clean(
    rt: Runtime, app_functions: Any
) -> None:
    image_id = _image(rt)
    before = _group_resources(rt)
    build = Build(
        id="bseed00001",
        request={
            "name": "ooi-jupyter",
            "vm": {"size": "Standard_D2s_v5", "admin_username": "azureuser"},
        },
        owner="alice@example.org",
        owner_id=object_id_of("alice@example.org"),
        state=BuildState.SUCCEEDED,
        outputs={"image_id": image_id, "security": {"type": "Standard"}},
    )
    rt.store.create(build)
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=5)).strftime("%H:%M")
    body = {
        "owners": ["alice@example.org", "bob@example.org", "carol@example.org"],
        "image": {"build": "ooi-jupyter"},
        "autostop": {"time": due, "time_zone": "UTC"},
        "monthly_hours": 1,
    }
    status, answer = _post(
        app_functions, "create_workstations", "workstations:batch", body, who=ADMIN
    )
    assert status == 202 and answer["accepted"] == 3, answer
    ids = [w["id"] for w in answer["workstations"]]

    # Each is created from the build's image, tagged for the cost guards, and waits for SSH.
    for ws_id in ids:
        ws = _pump(rt, ws_id, lambda w: any("waiting for SSH" in e.message for e in w.events))
        assert ws.state == WsState.CREATING and ws.spec.image_id == image_id
        vm = rt.azure.compute.virtual_machines.get(RG, f"labimage-{ws_id}-ws")
        assert (
            vm.tags["labimage-workstation"] == ws_id
            and vm.tags["labimage-autostop"] == f"{due} UTC"
        )
        assert vm.storage_profile.image_reference.id.lower() == image_id.lower()
    alice_ws, bob_ws, carol_ws = ids

    # Who sees what: an admin made them, so they are managed by administrators.
    status, listed = _post(app_functions, "list_workstations", "workstations", who=ADMIN)
    assert status == 200 and sorted(w["id"] for w in listed["workstations"]) == sorted(ids)
    status, listed = _post(app_functions, "list_workstations", "workstations", who=BOB)
    assert [w["id"] for w in listed["workstations"]] == [bob_ws]  # made for bob's name

    for ws_id in ids:
        _running(rt, ws_id, now - timedelta(minutes=61))
    status, shown = _post(
        app_functions, "get_workstation", f"workstations/{alice_ws}", who=ADMIN, id=alice_ws
    )
    assert status == 200 and shown["state"] == "running"
    assert shown["hours_this_month"] >= 1.0 and shown["cost_this_month"] > 0

    # Snooze one: its VM's tag moves tonight's stop; the auto-stop scan leaves it running.
    status, snoozed = _post(
        app_functions,
        "snooze_workstation",
        f"workstations/{carol_ws}/snooze",
        who=ADMIN,
        id=carol_ws,
        params={"hours": "2"},
    )
    assert status == 200 and snoozed["stop_at"], snoozed
    # The quota: bob's workstation has used its hour; the guard deallocates it.
    store = rt.store.workstations()
    stored = store.get(alice_ws)
    store.replace(
        stored,
        stored.ws.model_copy(
            update={"spec": stored.ws.spec.model_copy(update={"monthly_hours": 100.0})}
        ),
    )
    stored = store.get(carol_ws)
    store.replace(
        stored,
        stored.ws.model_copy(
            update={"spec": stored.ws.spec.model_copy(update={"monthly_hours": None})}
        ),
    )
    result = run_guard(rt, now)
    assert result.quota_stopped == [bob_ws], result
    bob = store.get(bob_ws).ws
    assert bob.state == WsState.STOPPED and "quota" in (bob.stop_reason or "")
    _until(lambda: vms.vm_state(rt.azure, f"labimage-{bob_ws}-ws").power == "deallocated")
    status, costs = _post(app_functions, "get_costs", "costs", who=ADMIN)
    rows = {r["id"]: r for r in costs["workstations"]["workstations"]}
    assert status == 200 and rows[bob_ws]["hours_this_month"] >= 1.0, costs["workstations"]
    assert rows[bob_ws]["state"] == "stopped" and costs["workstations"]["hours"] >= 3.0
    # Past the quota bob may not start it again this month; an administrator may.
    start = f"workstations/{bob_ws}/start"
    status, refused = _post(app_functions, "start_workstation", start, who=BOB, id=bob_ws)
    assert status == 409 and refused["problems"][0]["field"] == "monthly_hours", refused
    status, started = _post(app_functions, "start_workstation", start, who=ADMIN, id=bob_ws)
    assert status == 202 and started["state"] == "verifying", started
    assert store.get(bob_ws).ws.usage.quota_waived
    status, _ = _post(
        app_functions, "get_workstation", f"workstations/{bob_ws}", who=ALICE, id=bob_ws
    )
    assert status == 404  # alice sees her own only
    # Verified on start: this VM never answers (no sshd in the emulator's memory VMs); once the
    # check is past its time limit the workstation is left stopped with the reason on it.
    stored = store.get(bob_ws)
    late = datetime.now(UTC) - timedelta(minutes=25)
    store.replace(stored, stored.ws.model_copy(update={"work_started_at": late}))
    bob = _pump(rt, bob_ws, lambda w: w.state == WsState.STOPPED)
    assert bob.error and "verifying failed" in bob.error and bob.stop_reason == "start failed"
    _until(lambda: vms.vm_state(rt.azure, f"labimage-{bob_ws}-ws").power == "deallocated")
    status, shown = _post(
        app_functions, "get_workstation", f"workstations/{bob_ws}", who=BOB, id=bob_ws
    )
    assert status == 200 and "time limit" in shown["error"] and shown["connection"] is None
    # The auto-stop timer stops alice's (due), not carol's (snoozed); the hook records it.
    rt.bus.client(AUTOSTOP_QUEUE).clear_messages()
    scan = service.run_autostop_scan(rt, now)
    assert [q.rsplit("/", 1)[1] for q in scan.queued] == [f"labimage-{alice_ws}-ws"], scan
    for message in rt.bus.client(AUTOSTOP_QUEUE).receive_messages():
        service.handle_stop_message(rt, message.content, now)
    alice = store.get(alice_ws).ws
    assert alice.state == WsState.STOPPED and alice.stop_reason == "stopped by auto-stop"
    assert store.get(carol_ws).ws.state == WsState.RUNNING

    # Delete all: nothing of them is left in the group.
    for ws_id in ids:
        status, _ = _post(
            app_functions, "delete_workstation", f"workstations/{ws_id}", who=ADMIN, id=ws_id
        )
        assert status == 202
    for ws_id in ids:
        _pump(rt, ws_id, lambda w: w.state == WsState.DELETED)
    assert _group_resources(rt) == before


def _page(functions: Any, method: str, url: str) -> tuple[int, str]:
    """Open a one-click link as a browser would: no sign-in header, no function key."""
    split = urlsplit(url)
    *_, ws_id, action = split.path.split("/")
    request = func.HttpRequest(
        method=method,
        url=url,
        body=b"",
        route_params={"id": ws_id, "action": action},
        params=dict(parse_qsl(split.query)),
        headers={},
    )
    response = call(functions, "workstation_link")(request)
    return response.status_code, response.get_body().decode()


def test_a_user_starts_a_workstation_only_from_an_image_a_build_of_theirs_made(
    rt: Runtime, app_functions: Any
) -> None:
    image_id = _image(rt)
    _build_of_image(rt, "alice@example.org")
    version_id = _gallery_version(rt, image_id)
    unknown_image = image_id.rsplit("/", 1)[0] + "/no-such-image"
    unknown_version = version_id.rsplit("/", 1)[0] + "/9.9.9"

    def create(who: Any, owner: str, image: dict[str, str]) -> tuple[int, Any]:
        body = {"owner": owner, "image": image}
        return _post(app_functions, "create_workstation", "workstations", body, who=who)

    # Bob is answered as if alice's images did not exist.
    for field, mine, missing in (
        ("image_id", image_id, unknown_image),
        ("gallery_image_version_id", version_id, unknown_version),
    ):
        refused = create(BOB, "bob@example.org", {field: mine})
        assert refused[0] == 400 and refused[1]["problems"][0]["field"] == f"image.{field}"
        assert refused == create(BOB, "bob@example.org", {field: missing}), refused
        assert create(ALICE, "alice@example.org", {field: mine})[0] == 202
        assert create(ADMIN, "bob@example.org", {field: mine})[0] == 202
    status, batch = _post(
        app_functions,
        "create_workstations",
        "workstations:batch",
        {"owners": ["bob@example.org"], "image": {"image_id": image_id}},
        who=ADMIN,
    )
    assert status == 202 and batch["accepted"] == 1, batch
    owners = sorted(w.owner for w in rt.store.workstations().list())
    assert owners == ["alice@example.org"] * 2 + ["bob@example.org"] * 3


def test_a_signed_link_from_the_warning_confirms_then_skips_tonight_once(
    rt: Runtime, app_functions: Any
) -> None:
    image_id = _image(rt)
    _build_of_image(rt, "alice@example.org")
    now = datetime.now(UTC)
    stop = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
    body = {
        "owner": "alice@example.org",
        "image": {"image_id": image_id},
        "autostop": {"time": stop.strftime("%H:%M"), "time_zone": "UTC"},
    }
    status, made = _post(app_functions, "create_workstation", "workstations", body)
    assert status == 202, made
    ws_id = made["id"]
    _pump(rt, ws_id, lambda w: any("waiting for SSH" in e.message for e in w.events))
    _running(rt, ws_id, now)
    vm_name = f"labimage-{ws_id}-ws"
    tags = dict(rt.azure.compute.virtual_machines.get(RG, vm_name).tags)

    extras = warning_extras(rt, tags, stop)
    assert extras["skip_tonight"] in extras["text"] and "works once" in extras["text"]
    assert warning_extras(rt, {"owner": "x"}, stop) == {}  # not a workstation: no links
    link = extras["skip_tonight"]

    status, shown = _page(app_functions, "GET", link)
    assert status == 200 and "skip tonight" in shown and '<form method="post"' in shown
    assert (
        "labimage-autostop-skip-until"
        not in rt.azure.compute.virtual_machines.get(RG, vm_name).tags
    )
    status, done = _page(app_functions, "POST", link)
    assert status == 200 and "no stop tonight" in done, done
    after = rt.azure.compute.virtual_machines.get(RG, vm_name).tags
    assert after["labimage-autostop-skip-until"] == now.date().isoformat()
    assert _page(app_functions, "POST", link)[0] == 410  # it works once
    assert _page(app_functions, "GET", link)[0] == 410
    forged = link.replace(ws_id, "wzzzzzzzzz")
    assert _page(app_functions, "POST", forged)[0] == 403
    # The auto-stop scan leaves the workstation running tonight.
    scan = service.run_autostop_scan(rt, stop + timedelta(minutes=1))
    assert not [q for q in scan.queued if q.endswith(vm_name)]


def test_only_the_signed_links_and_the_openapi_document_need_no_sign_in_and_no_key(
    app_functions: Any,
) -> None:
    """App Service authentication guards every anonymous route but its excluded paths; the
    host checks a key on FUNCTION routes. What is left open is exactly this list."""
    settings = json.loads((ROOT / "infra" / "authsettings.json").read_text())
    excluded = settings["globalValidation"]["excludedPaths"]

    def open_to_anyone(route: str) -> bool:
        path = f"/api/{route}"
        return any(path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in excluded)

    open_routes = set()
    for f in app_functions.values():
        binding = f.get_bindings()[0]
        if binding.type != "httpTrigger":
            continue
        level = str(getattr(binding.auth_level, "value", binding.auth_level)).lower()
        if level == "anonymous" and open_to_anyone(str(binding.route)):
            open_routes.add(str(binding.route))
    assert open_routes == {"openapi.json", "links/workstations/{id}/{action}"}


def test_a_poisoned_creation_is_cleaned_up_and_ends_deleted_with_the_reason(
    rt: Runtime, app_functions: Any
) -> None:
    spec = WsSpec(image_id="/x", image_source="image_id", size="Standard_D2s_v5")
    ws = prepare(Workstation(id="wpoison001", owner="ada", spec=spec), 0)
    rt.store.workstations().create(ws)
    body = WsMessage(ws.id, WsState.CREATING, ws.token).to_json().encode()
    poisoned = QueueMessage(id="m1", body=body, dequeue_count=1)
    call(app_functions, "workstation_creating_poison")(poisoned)
    after = _pump(rt, ws.id, lambda w: w.state == WsState.DELETED)
    assert "crashed repeatedly" in (after.error or "")
    assert [e.message for e in after.events][-1] == "deleted: nothing of it is left"
