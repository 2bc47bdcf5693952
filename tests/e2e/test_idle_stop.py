"""Idle stop on localcloud: two kept VMs from real builds, each with the image's own Jupyter
started by its admin user. On one nobody does anything; on the other a notebook cell runs. The
idle timer, fired through the host's admin endpoint, deallocates the first once it has been idle
past its `labimage-idle-minutes` and leaves the second running.

The e2e instance sets LABIMAGE_IDLE_CPU_PERCENT=100 (see conftest.py: a sandbox's /proc/stat is
the whole host's), so here idleness is decided by Jupyter's own record alone.

The tag's minimum is 5 minutes, so this module waits about 5 minutes of real time after the
builds (about 2 minutes, side by side): about 8 minutes in all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute import models as cm

from shared.costguard.actions import STOP, CostActions
from shared.costguard.idle import IDLE_TAG
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshTarget, connect
from tests.e2e.conftest import Cloud
from tests.e2e.test_autostop import _power
from tests.e2e.test_builds import gallery_keep_request

pytestmark = [pytest.mark.e2e, pytest.mark.root]

IDLE_MINUTES = 5  # the smallest limit the tag accepts
GUEST_PYTHON = "/opt/labimage/env/bin/python"
JUPYTER = "/opt/labimage/env/bin/jupyter"
JUPYTER_PORT = "8917"  # clear of the 8889 the build's own verification used

# Detaches Jupyter from the SSH session (setsid -f), in the user's home; argv arrives as "$@".
START_JUPYTER = 'cd && exec setsid -f "$@" >jupyter-e2e.log 2>&1 </dev/null'

# Runs on the guest as the admin user with the image's Python, so the host needs no Jupyter or
# websocket client. `status`: Jupyter's /api/status and /api/kernels. `busy`: start a kernel and
# run a ten-minute cell through the kernel's websocket, as a notebook front end does; return once
# the kernel reports busy (the cell keeps running after the socket closes).
GUEST_CLIENT = r"""
import asyncio, glob, json, os, sys, time, urllib.request, uuid
from datetime import datetime, timezone
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

def call(info, method, path, body=None):
    url = "http://127.0.0.1:%d%s%s" % (info["port"], info.get("base_url", "/"), path)
    data = None if body is None else json.dumps(body).encode()
    head = {"Authorization": "token " + info["token"], "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=head)
    return json.load(urllib.request.urlopen(request, timeout=30))

def server():
    pattern = os.path.expanduser("~/.local/share/jupyter/runtime/jpserver-*.json")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for path in glob.glob(pattern):
            try:
                info = json.load(open(path))
                call(info, "GET", "api/status")
                return info
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.5)
    sys.exit("no Jupyter server answered within 90 s")

async def run_cell(info, kernel_id, code):
    base = "ws://127.0.0.1:%d%s" % (info["port"], info.get("base_url", "/"))
    url = "%sapi/kernels/%s/channels" % (base, kernel_id)
    head = {"Authorization": "token " + info["token"]}
    ws = await websocket_connect(HTTPRequest(url, headers=head, connect_timeout=30))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "e2e",
              "session": uuid.uuid4().hex, "version": "5.3",
              "date": datetime.now(timezone.utc).isoformat()}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    await ws.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                       "content": content, "channel": "shell", "buffers": []}))
    while True:
        text = await asyncio.wait_for(ws.read_message(), 60)
        if text is None:
            sys.exit("the kernel's websocket closed before the cell started")
        msg = json.loads(text)
        if (msg.get("msg_type") == "status"
                and msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "busy"):
            ws.close()
            return

info = server()
if sys.argv[1] == "busy":
    kernel = call(info, "POST", "api/kernels", {})
    asyncio.run(run_cell(info, kernel["id"], "import time\ntime.sleep(600)"))
status = call(info, "GET", "api/status")
kernels = call(info, "GET", "api/kernels?no_track_activity=1")
print(json.dumps({"status": status, "kernels": kernels}))
"""


@dataclass(frozen=True)
class KeptVm:
    build_id: str
    name: str
    vm_id: str
    target: SshTarget


def idle_test_request(cloud: Cloud, name: str, version: str) -> dict[str, Any]:
    """The gallery/keep example under its own names, auto-stop off: only idle stop may act."""
    request = gallery_keep_request(cloud)
    request["name"] = name
    request["image"]["name"] = f"jupyter-{name}"
    request["image"]["gallery"]["version"] = version
    request["autostop"] = {"enabled": False}
    return request


def _kept_vm(cloud: Cloud, build_id: str) -> KeptVm:
    status = cloud.wait(build_id)
    assert status["state"] == "succeeded", status["error"]
    connection = status["connection"]
    user, address = connection["ssh_command"].rsplit(" ", 1)[1].split("@", 1)
    keys = Path(cloud.settings.ssh_key_dir or "")
    name = str(connection["vm_name"])
    vm = cloud.azure().compute.virtual_machines.get(cloud.settings.resource_group, name)
    target = SshTarget(
        host=address,
        port=22,
        username=user,
        client_private_key=(keys / f"{build_id}.client").read_text(),
        host_public_key=(keys / f"{build_id}.host.pub").read_text().strip(),
    )
    return KeptVm(build_id, name, str(vm.id), target)


@pytest.fixture(scope="module")
def kept(cloud: Cloud) -> Iterator[dict[str, KeptVm]]:
    """Two kept VMs built side by side ("idle" and "busy"); deleted afterwards."""
    ids = {
        "idle": cloud.submit(idle_test_request(cloud, "idle-left", "9.1.0")),
        "busy": cloud.submit(idle_test_request(cloud, "idle-busy", "9.2.0")),
    }
    made: dict[str, KeptVm] = {}
    try:
        for role, build_id in ids.items():
            made[role] = _kept_vm(cloud, build_id)
        yield made
    finally:
        group = cloud.settings.resource_group
        for vm in made.values():
            cloud.azure().compute.virtual_machines.begin_delete(group, vm.name).result()


async def _on_guest(target: SshTarget, *commands: RemoteCommand) -> str:
    """Run the commands in order as the admin user; the last one's stdout."""
    out = ""
    async with connect(target) as runner:
        for command in commands:
            out = (await runner.check(command)).stdout
    return out


def start_jupyter(vm: KeptVm, with_running_cell: bool) -> dict[str, Any]:
    """The image's Jupyter, started by the admin user as the build's start_jupyter command
    does (bound to the guest's loopback); optionally with a running cell. What Jupyter reports."""
    start = RemoteCommand(
        (
            "/bin/sh",
            "-c",
            START_JUPYTER,
            "start-jupyter",
            JUPYTER,
            "server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={JUPYTER_PORT}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
        ),
        30,
    )
    mode = "busy" if with_running_cell else "status"
    client = RemoteCommand((GUEST_PYTHON, "-c", GUEST_CLIENT, mode), 180)
    return dict(json.loads(asyncio.run(_on_guest(vm.target, start, client))))


def jupyter_report(vm: KeptVm) -> dict[str, Any]:
    client = RemoteCommand((GUEST_PYTHON, "-c", GUEST_CLIENT, "status"), 120)
    return dict(json.loads(asyncio.run(_on_guest(vm.target, client))))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def last_mark(report: dict[str, Any]) -> datetime:
    """The latest activity Jupyter reports, server-wide or of any kernel."""
    marks = [report["status"]["last_activity"], *(k["last_activity"] for k in report["kernels"])]
    return max(_instant(m) for m in marks)


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return bool(predicate())


def fire_idle_timer(cloud: Cloud) -> None:
    code, _ = cloud.request("POST", "/admin/functions/idle_stop", {"input": ""})
    assert code == 202


def test_an_idle_kept_vm_is_deallocated_and_one_running_a_notebook_is_not(
    cloud: Cloud, kept: dict[str, KeptVm]
) -> None:
    idle, busy = kept["idle"], kept["busy"]
    group = cloud.settings.resource_group
    azure = cloud.azure()
    for vm in (idle, busy):
        tags = dict(azure.compute.virtual_machines.get(group, vm.name).tags or {})
        assert tags["labimage-autostop"] == "off"  # a kept VM, and auto-stop stays out of it
        tags[IDLE_TAG] = str(IDLE_MINUTES)
        update = cm.VirtualMachineUpdate(tags=tags)
        azure.compute.virtual_machines.begin_update(group, vm.name, update).result()

    idle_report = start_jupyter(idle, with_running_cell=False)
    assert idle_report["kernels"] == []
    busy_report = start_jupyter(busy, with_running_cell=True)
    assert [k["execution_state"] for k in busy_report["kernels"]] == ["busy"]

    quiet_since = {vm.name: last_mark(r) for vm, r in ((idle, idle_report), (busy, busy_report))}

    actions = CostActions.from_connection_string(
        cloud.settings.storage_connection, cloud.settings.costs_table, azure.credential
    )
    planted = datetime.now(UTC) - timedelta(hours=1)

    def plant_old_idle_times() -> None:
        # As if an earlier run had seen both VMs idle for an hour. A run overwrites the idle
        # VM's with Jupyter's newer record and forgets the busy VM's: so we see it judged both.
        for vm in (idle, busy):
            actions.set_idle_since(vm.vm_id, planted, planted)

    def judged_both() -> bool:
        return actions.idle_since(busy.vm_id) is None and actions.idle_since(idle.vm_id) != planted

    # Right away neither is stopped: the idle one has not been idle long enough yet, and a
    # running cell keeps the other up even though it was remembered idle for an hour.
    plant_old_idle_times()
    fire_idle_timer(cloud)
    assert _wait(judged_both, 120), "the idle timer did not judge both VMs"
    assert _power(cloud, idle.name) == "running"
    assert _power(cloud, busy.name) == "running"
    # Being probed is not activity: Jupyter's record is where it was before the run.
    assert last_mark(jupyter_report(idle)) == quiet_since[idle.name]
    assert last_mark(jupyter_report(busy)) == quiet_since[busy.name]

    # Once both have been quiet past the limit, the idle one is deallocated; the busy one,
    # whose kernel has been silent just as long while its cell runs, is not.
    due = max(quiet_since.values()) + timedelta(minutes=IDLE_MINUTES, seconds=10)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    plant_old_idle_times()
    started = datetime.now(UTC)
    fire_idle_timer(cloud)
    assert _wait(lambda: _power(cloud, idle.name) == "deallocated", 120)
    assert _wait(lambda: actions.idle_since(busy.vm_id) is None, 60)
    assert _power(cloud, busy.name) == "running"
    assert [k["execution_state"] for k in jupyter_report(busy)["kernels"]] == ["busy"]

    ours = {idle.vm_id.lower(), busy.vm_id.lower()}
    stops = [
        (str(r["VmId"]).lower(), r["Kind"])
        for r in actions.rows(STOP, started - timedelta(minutes=1), datetime.now(UTC))
        if str(r["VmId"]).lower() in ours
    ]
    assert stops == [(idle.vm_id.lower(), "idle")]
