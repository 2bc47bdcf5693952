"""Faults from outside the controller, done to one running localcloud instance.

Each helper does what Azure or a person does to a deployment: the Functions host recycled
mid-invocation (SIGKILL, then started again with the same command line and settings), Storage
restarting with its data kept, a queue message delivered twice, the build VM deleted or
deallocated in the portal, the captured image deleted before it is used. They touch only the
instance in `state_dir`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from localcloud import azurite, processes
from localcloud.instance import REPO_ROOT, Layout, Ports, probes, read_env_file

RESTART_TIMEOUT_S = 60.0


class OutsideFaultError(RuntimeError):
    """A helper could not do its fault (the component was not running, did not come back)."""


def _env(layout: Layout) -> dict[str, Any]:
    recorded = read_env_file(layout)
    if recorded is None:
        raise OutsideFaultError(f"no localcloud instance in {layout.state_dir}")
    return recorded


def _wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise OutsideFaultError(f"{what} did not come back in {timeout_s:.0f} s")
        time.sleep(0.2)


def _kill(pid: int, sig: signal.Signals, grace_s: float = 30) -> None:
    """Send `sig`; a process still there after `grace_s` (Azurite closing while clients keep
    their connections open) gets SIGKILL, so the restart never waits on it for ever."""
    try:
        os.kill(pid, sig)
        with contextlib.suppress(OutsideFaultError):
            _wait_until(f"process {pid}", lambda: not processes.is_alive(pid), grace_s)
            return
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_until(f"process {pid}", lambda: not processes.is_alive(pid), 30)


def kill_functions_host(state_dir: Path) -> float:
    """SIGKILL the Functions host (every invocation dies where it is), start it again as it
    was started; how many seconds it was away."""
    layout = Layout(state_dir)
    recorded = _env(layout)
    pid = processes.live_pid(state_dir, "functions")
    if pid is None:
        raise OutsideFaultError("the Functions host is not running")
    argv = processes.command_line(pid)
    started = time.monotonic()
    _kill(pid, signal.SIGKILL)
    env = {**os.environ, **recorded["settings"], "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    processes.start_detached(state_dir, "functions", argv, env, REPO_ROOT)
    ports = Ports(**recorded["ports"])
    _wait_until("the Functions host", lambda: probes(layout, ports)["functions"], RESTART_TIMEOUT_S)
    return time.monotonic() - started


def restart_azurite(state_dir: Path) -> float:
    """Stop Azurite (SIGTERM: it writes its data out) and start it on the same folder and
    ports; how many seconds Storage was away."""
    layout = Layout(state_dir)
    ports = Ports(**_env(layout)["ports"])
    pid = processes.live_pid(state_dir, "azurite")
    if pid is None:
        raise OutsideFaultError("Azurite is not running")
    started = time.monotonic()
    _kill(pid, signal.SIGTERM)
    log = processes.log_path(state_dir, "azurite")
    proc = azurite.start(layout.azurite_dir, ports.azurite(), log=log)
    processes.record_pid(state_dir, "azurite", proc.pid)
    return time.monotonic() - started


def deliver_twice(connection: str, queue: str, body: str, copies: int = 2) -> None:
    """Put `body` on `queue` `copies` times (base64, as the Functions host reads): a message
    the queue hands out twice, as Storage queues may."""
    client = QueueClient.from_connection_string(
        connection, queue, message_encode_policy=BinaryBase64EncodePolicy()
    )
    for _ in range(copies):
        client.send_message(body.encode())


def stage_message(build_id: str, stage: str, token: str) -> str:
    """A stage message as the controller sends it (shared/bus.py's StageMessage)."""
    return json.dumps({"build_id": build_id, "stage": stage, "token": token})


def delete_resource(compute: Any, group: str, kind: str, name: str) -> None:
    """Delete a VM (`virtual_machines`) or an image (`images`) out of band and wait for it."""
    getattr(compute, kind).begin_delete(group, name).result()


def deallocate_vm(compute: Any, group: str, name: str) -> None:
    """Deallocate a VM out of band (a person pressing Stop in the portal)."""
    compute.virtual_machines.begin_deallocate(group, name).result()


def tagged(compute: Any, group: str, kind: str, tag: str, value: str) -> list[str]:
    """Names of the VMs or images of `group` whose tag `tag` is `value`."""
    listing = getattr(compute, kind)
    items = (
        listing.list(group) if kind == "virtual_machines" else listing.list_by_resource_group(group)
    )
    return [str(item.name) for item in items if (item.tags or {}).get(tag) == value]
