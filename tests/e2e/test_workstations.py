"""Workstations on localcloud, end to end: a batch of three from the seed build's image, each
verified through the SSH tunnel (Jupyter answers) and reachable with the pinned host key; one
stopped by the auto-stop timer, one by its monthly quota, one kept running tonight through a
signed link; then all deleted with nothing of them left. About 9.5 minutes measured on this
busy machine: 4 for the instance and the seed build (no relaunch), 4.5 for the three VMs side by
side and the two minutes to the stop, 1 for the deletes and teardown."""

# mypy: disable-error-code="union-attr"

from __future__ import annotations

import asyncio
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.main import main
from localcloud.funchost.hostkeys import read_host_keys
from shared.azure.tags import change_tags
from shared.runtime import Runtime
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshTarget, connect
from shared.workstations.link_pages import warning_extras
from tests.e2e.conftest import Cloud
from tests.e2e.test_autostop import _power

pytestmark = [pytest.mark.e2e, pytest.mark.root]

OWNERS = ["ada@example.org", "bo@example.org", "cy@example.org"]
LARGER_DISK_GB = 300  # the source build's data disk is the seed request's 256 GB


def _ws(cloud: Cloud, ws_id: str) -> dict[str, Any]:
    code, body = cloud.request("GET", f"/api/workstations/{ws_id}")
    assert code == 200, body
    return dict(body)


def _wait(
    cloud: Cloud, ws_id: str, state: str, timeout_s: float = 420, until: Any = None
) -> dict[str, Any]:
    """Poll until the workstation is in `state` (or `until(it)` holds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = _ws(cloud, ws_id)
        if shown["state"] == state or (until and until(shown)):
            return shown
        if shown["state"] in ("deleting", "deleted") and state not in ("deleting", "deleted"):
            pytest.fail(f"workstation {ws_id} is {shown['state']}: {shown['error']}")
        time.sleep(1)
    pytest.fail(f"workstation {ws_id} is not {state} after {timeout_s} s: {_ws(cloud, ws_id)}")


def _fire(cloud: Cloud, function: str) -> None:
    code, body = cloud.request("POST", f"/admin/functions/{function}", {"input": ""})
    assert code == 202, body


def _open_link(url: str, method: str) -> tuple[int, str]:
    """As a browser would: no sign-in, no function key."""
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _leftovers(cloud: Cloud, ws_ids: list[str]) -> list[str]:
    azure = cloud.azure()
    found = azure.resources.resources.list_by_resource_group(cloud.settings.resource_group)
    return [str(r.id) for r in found if any(w in str(r.name) for w in ws_ids)]


@pytest.fixture(scope="module")
def batch(cloud: Cloud) -> Iterator[list[str]]:
    """A source build as cheap as a build can be (Jupyter only: what a workstation's check
    needs; no relaunch: the workstations verify its image), then the batch of three; bo's has
    a quota of 36 s. Deleted afterwards, whatever happened."""
    # A name and image of its own: the session's other modules build the seed request too.
    source = cloud.seed_request(
        name="ws-batch-source",
        data=[],
        repositories=[],
        notebooks={"run": []},
        image={"name": "ws-batch-source"},
        relaunch={"verify": False, "keep_running": False},
    )
    source["python"]["packages"] = ["jupyterlab>=4"]
    build_id = cloud.submit(source)
    status = cloud.wait(build_id, timeout_s=900)
    assert status["state"] == "succeeded", status["error"]
    body = {
        "owners": OWNERS,
        "image": {"build": status["name"]},
        "autostop": {"enabled": False},  # the test sets the stop time once they run
        "overrides": {
            "bo@example.org": {"monthly_hours": 0.01},
            # A larger data disk than the image's: the guest's file system is grown to it.
            "cy@example.org": {"data_disk": {"size_gb": LARGER_DISK_GB}},
        },
    }
    code, answer = cloud.request("POST", "/api/workstations:batch", body)
    assert code == 202 and answer["accepted"] == 3, answer
    ids = [w["id"] for w in answer["workstations"]]
    try:
        yield ids
    finally:
        for ws_id in ids:
            cloud.request("DELETE", f"/api/workstations/{ws_id}")
        deadline = time.monotonic() + 300
        while _leftovers(cloud, ids) and time.monotonic() < deadline:
            time.sleep(2)


def _stop_at(cloud: Cloud, ws_ids: list[str], stop: datetime) -> None:
    """Set the workstations' evening stop, as a person editing the VMs' labimage-autostop tag
    would."""
    azure = cloud.azure()
    for ws_id in ws_ids:
        name = f"labimage-{ws_id}-ws"
        vm = azure.compute.virtual_machines.get(cloud.settings.resource_group, name)
        before = dict(vm.tags)
        after = {**before, "labimage-autostop": f"{stop:%H:%M} UTC"}
        change_tags(azure, str(vm.id), before, after)


def _cli(cloud: Cloud, *argv: str) -> str:
    """`labimage ...` as an administrator with the host's key; its output."""
    out = io.StringIO()
    consoles = Consoles(Console(file=out, width=400), Console(file=out, width=400))
    key = read_host_keys(cloud.state_dir / "funchost")["default"]
    code = main([*argv, "--api-url", cloud.api, "--function-key", key], consoles)
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_a_batch_is_verified_stopped_by_autostop_quota_and_a_link_then_deleted_clean(
    cloud: Cloud, batch: list[str]
) -> None:
    ids = batch
    ada, bo, cy = ids
    shown = {ws_id: _wait(cloud, ws_id, "running") for ws_id in (ada, cy)}
    # bo's quota may run out (and the timer stop it) as soon as it runs: verified is enough.
    shown[bo] = _wait(cloud, bo, "running", until=lambda ws: ws["state"] == "stopped")
    for ws_id, ws in shown.items():
        assert ws["last_check"].startswith("Jupyter answered"), ws
        if ws["state"] != "running":
            continue
        connection = ws["connection"]
        assert connection["known_hosts_line"].startswith(f"{connection['address']} ssh-ed25519 ")
        # Reachable as the ssh command says: the user's key, the pinned host key only.
        keys = Path(cloud.settings.ssh_key_dir or "")
        target = SshTarget(
            host=connection["address"],
            port=22,
            username=connection["username"],
            client_private_key=(keys / f"{ws_id}.client").read_text(),
            host_public_key=" ".join(connection["known_hosts_line"].split()[1:]),
        )

        mount_point = ws["data_disk"]["mount_point"]

        async def hostname_and_disk(
            target: SshTarget = target, mount_point: str = mount_point
        ) -> tuple[str, int]:
            async with connect(target) as runner:
                name = (await runner.check(RemoteCommand(("hostname",), 30))).stdout
                df = ("df", "--output=size", "-B1G", mount_point)
                size = (await runner.check(RemoteCommand(df, 30))).stdout.split()[-1]
                return name.strip(), int(size)

        name, disk_gb = asyncio.run(hostname_and_disk())
        assert name
        if ws_id == cy:
            assert ws["data_disk"]["size_gb"] == LARGER_DISK_GB
            assert disk_gb >= LARGER_DISK_GB - 1, disk_gb
        else:
            assert disk_gb < LARGER_DISK_GB - 1, disk_gb

    # The CLI sees them, and prints the ssh command with the pinned host key and the tunnel.
    listed = json.loads(_cli(cloud, "ws", "list", "--json"))
    assert {w["id"] for w in listed["workstations"]} >= set(ids)
    printed = _cli(cloud, "ws", "ssh", ada, "--print")
    assert "StrictHostKeyChecking=yes" in printed and "7005:localhost:8889" in printed

    # bo's 36 s are used up: the workstations' timer deallocates it; bo may not restart it.
    deadline = time.monotonic() + 120
    # (not hours_this_month, which is rounded: 0.0095 h shows as 0.01 with 2 s still to go)
    while not _ws(cloud, bo)["quota_reached"] and time.monotonic() < deadline:
        time.sleep(2)
    _fire(cloud, "workstation_guard")
    stopped = _wait(cloud, bo, "stopped", 60)
    assert "quota" in stopped["stop_reason"] and stopped["quota_reached"]

    # ada's and cy's stop comes in two minutes; cy skips it through the warning's signed
    # link: GET confirms, POST acts, once.
    stop = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    _stop_at(cloud, [ada, cy], stop)
    vm_tags = dict(
        cloud.azure()
        .compute.virtual_machines.get(cloud.settings.resource_group, f"labimage-{cy}-ws")
        .tags
    )
    links = warning_extras(Runtime(cloud.settings), vm_tags, stop)
    assert _open_link(links["skip_tonight"], "GET")[0] == 200
    status, page = _open_link(links["skip_tonight"], "POST")
    assert status == 200 and "no stop tonight" in page, page
    assert _open_link(links["skip_tonight"], "POST")[0] == 410

    # At ada's stop time the auto-stop timer deallocates ada's, and leaves cy's running.
    time.sleep(max(0.0, (stop - datetime.now(UTC)).total_seconds() + 2))
    _fire(cloud, "autostop")
    stopped = _wait(cloud, ada, "stopped", 120)
    assert stopped["stop_reason"] == "stopped by auto-stop", stopped
    assert _power(cloud, f"labimage-{ada}-ws") in ("deallocated", "deallocating")
    assert _ws(cloud, cy)["state"] == "running"
    assert _power(cloud, f"labimage-{cy}-ws") == "running"

    code, costs = cloud.request("GET", "/api/costs")
    rows = {r["id"]: r for r in costs["workstations"]["workstations"]}
    assert code == 200 and set(ids) <= set(rows) and rows[bo]["hours_this_month"] >= 0.01

    # The CLI, as a researcher uses it: start ada's again (checked again before it runs),
    # snooze tonight's stop, show it, stop it; then delete all three.
    started = json.loads(_cli(cloud, "ws", "start", ada, "--json"))
    assert started["state"] == "verifying", started
    _wait(cloud, ada, "running", 300)
    assert _power(cloud, f"labimage-{ada}-ws") == "running"
    snoozed = json.loads(_cli(cloud, "ws", "snooze", ada, "--hours", "2", "--json"))
    assert snoozed["id"] == ada and "stop_at" in snoozed, snoozed
    assert json.loads(_cli(cloud, "ws", "show", ada, "--json"))["state"] == "running"
    assert json.loads(_cli(cloud, "ws", "stop", ada, "--json"))["id"] == ada
    _wait(cloud, ada, "stopped", 120)
    assert _power(cloud, f"labimage-{ada}-ws") in ("deallocated", "deallocating")

    for ws_id in ids:
        assert json.loads(_cli(cloud, "ws", "delete", ws_id, "--json"))["id"] == ws_id
    for ws_id in ids:
        _wait(cloud, ws_id, "deleted", 300)
    assert _leftovers(cloud, ids) == []
