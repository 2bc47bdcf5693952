"""The work of each working state: create the VM, verify it (after creation and on every
start), delete everything. Each call does the next missing piece and answers Wait until the
piece is done, then Moved with the trigger the state machine follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.azure import network, vms
from shared.azure import resources as arm
from shared.azure.clients import AzureClients
from shared.errors import PermanentError, StepError
from shared.remote import render
from shared.remote.jupyter import check_jupyter
from shared.settings import Settings
from shared.ssh.errors import RemoteCommandError, SshConnectionError
from shared.ssh.keys import KeyStore
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner, connect
from shared.steps.verify import JUPYTER_PORT
from shared.workstations import usage
from shared.workstations import vm as ws_vm
from shared.workstations.machine import WsState, WsTrigger
from shared.workstations.record import Workstation

POLL_S = 2.0
# A first Jupyter start on a fresh VM imports its extensions from a cold disk: with several
# workstations booting side by side that took over a minute here. A Jupyter that is merely slow
# is given more tries (each a fresh start, in its own invocation) before the check fails.
JUPYTER_WAIT_S = 90
JUPYTER_TRIES = 3
GROW_TIMEOUT_S = 300  # the mount script waits for cloud-init, then grows in seconds


@dataclass(frozen=True)
class Wait:
    ws: Workstation
    after_s: float
    note: str


@dataclass(frozen=True)
class Moved:
    ws: Workstation
    trigger: WsTrigger
    note: str


Outcome = Wait | Moved


@dataclass(frozen=True)
class WsContext:
    settings: Settings
    azure: AzureClients
    keys: KeyStore
    now: datetime


async def create(ctx: WsContext, ws: Workstation) -> Outcome:
    """Network, IP, NIC and the VM from the image; Moved(CREATED) once SSH answers."""
    names, vm = ws_vm.names_of(ws.id)
    tags = ws_vm.tags_of(ws)
    subnet_id = ws.marker("subnet_id")
    if subnet_id is None:
        subnet_id = network.ensure_network(ctx.azure, names, tags, ctx.settings.ssh_source_cidr)
        if subnet_id is None:
            return Wait(ws, POLL_S, "creating the network")
        ws = ws.with_progress(subnet_id=subnet_id)
    if not ws.marker("vm_create_started"):
        made = network.ensure_vm_nic(ctx.azure, vm, subnet_id, tags)
        if made is None:
            return Wait(ws, POLL_S, f"creating the IP and NIC of {vm.vm}")
        vms.begin_create_vm(ctx.azure, ws_vm.vm_spec(ws, ctx.keys, made[0]))
        return Wait(ws.with_progress(vm_create_started=True), POLL_S, f"creating VM {vm.vm}")
    return await _until_ssh(ctx, ws, WsTrigger.CREATED, "created")


async def verify(ctx: WsContext, ws: Workstation) -> Outcome:
    """Start the VM if it is deallocated, then check that Jupyter answers through an SSH
    tunnel, as relaunch checks a build. A check that fails deallocates the VM (CHECK_FAILED)."""
    if not ws.marker("up"):
        state = ws_vm.power_of(ctx.azure, ws.id)
        if not state.exists:
            raise PermanentError(f"the VM of workstation {ws.id} does not exist")
        if not ws.marker("start_requested"):
            if state.power in ("deallocating", "stopping"):
                return Wait(ws, POLL_S, f"waiting for the VM to finish {state.power}")
            if state.power in ("deallocated", "stopped"):
                ws_vm.begin_start(ctx.azure, ws.id)
                return Wait(ws.with_progress(start_requested=True), POLL_S, "starting the VM")
        up = await _until_ssh(ctx, ws, WsTrigger.VERIFIED, "up")
        if isinstance(up, Wait):
            return up
        ws = up.ws.with_progress(up=True)
    try:
        async with connect(ws_vm.ssh_target(ws, ctx.keys, ws.address or "")) as runner:
            if ws.spec.data_disk_gb and ws.spec.data_disk_mount and not ws.marker("disk_grown"):
                await _grow_data_disk(runner, ws)
                ws = ws.with_progress(disk_grown=True)
            status = await check_jupyter(
                runner, "jupyter-workstation", JUPYTER_PORT, wait_s=JUPYTER_WAIT_S
            )
    except (SshConnectionError, RemoteCommandError) as exc:
        return Wait(ws, POLL_S, f"waiting for SSH to check Jupyter: {exc}")
    except PermanentError as exc:
        tries = int(ws.marker("jupyter_tries", 0)) + 1
        if "did not answer within" in str(exc) and tries < JUPYTER_TRIES:
            note = f"Jupyter was slow to answer (try {tries} of {JUPYTER_TRIES}); trying again"
            return Wait(ws.with_progress(jupyter_tries=tries), POLL_S, note)
        return check_failed(ctx, ws, f"Jupyter did not answer through the SSH tunnel: {exc}")
    version = status.get("version") or status.get("started") or "answered"
    checked = ws.model_copy(update={"last_check": f"Jupyter answered ({version})"})
    return Moved(checked, WsTrigger.VERIFIED, "Jupyter answered through the SSH tunnel")


async def _grow_data_disk(runner: SshRunner, ws: Workstation) -> None:
    """The image's partition and file system, grown to the larger disk the request asked for
    (the mount script does it, and leaves a disk that already fills its size alone)."""
    mount_point, filesystem = ws.spec.data_disk_mount or ("", "")
    run = render.mount_disk(ws.spec.data_disk_lun, mount_point, filesystem)
    await render.run_now(runner, run, GROW_TIMEOUT_S)


def check_failed(ctx: WsContext, ws: Workstation, reason: str) -> Moved:
    """Leave the workstation stopped with the reason on it."""
    stop_vm(ctx, ws)
    failed = usage.stopped(ws, ctx.now).model_copy(
        update={"last_check": reason, "error": reason, "stop_reason": "verification failed"}
    )
    return Moved(failed, WsTrigger.CHECK_FAILED, f"verification failed: {reason}")


def stop_vm(ctx: WsContext, ws: Workstation) -> None:
    """Ask for deallocation (best effort: a VM that is gone needs no stop)."""
    try:
        if ws_vm.power_of(ctx.azure, ws.id).exists:
            ws_vm.begin_deallocate(ctx.azure, ws.id)
    except StepError:
        pass


async def delete(ctx: WsContext, ws: Workstation) -> Outcome:
    """Delete the VM (its NIC, IP and disks go with it), then whatever is still left, in
    dependency order; Moved(GONE) when nothing of it exists any more."""
    for kind in arm.DELETE_ORDER:
        pending = [
            rid
            for k, rid in ws_vm.resource_ids(ctx.settings, ws.id)
            if k == kind and arm.exists(ctx.azure, k, rid)
        ]
        if not pending:
            continue
        for rid in pending:
            marker = f"delete:{rid}"
            if not ws.marker(marker):
                arm.begin_delete(ctx.azure, kind, rid)
                ws = ws.with_progress(**{marker: True})
        return Wait(ws, POLL_S, f"deleting {len(pending)} {kind.rsplit('/', 1)[-1]}")
    ctx.keys.delete(ws.id)
    gone = usage.stopped(ws, ctx.now).model_copy(update={"address": None})
    return Moved(gone, WsTrigger.GONE, "deleted: nothing of it is left")


async def _until_ssh(ctx: WsContext, ws: Workstation, trigger: WsTrigger, note: str) -> Outcome:
    """Wait for the VM to run, have an address and answer SSH with the pinned host key."""
    _, vm = ws_vm.names_of(ws.id)
    state = ws_vm.power_of(ctx.azure, ws.id)
    if not state.exists:
        return Wait(ws, POLL_S, f"waiting for VM {vm.vm} to appear")
    if state.provisioning == "Failed":
        raise PermanentError(vms.creation_failed(vm.vm, state))
    if not state.running:
        return Wait(ws, POLL_S, f"VM {vm.vm} is {state.power or state.provisioning}")
    ws = usage.started(ws, ctx.now)
    address = ws_vm.address_of(ctx.azure, ws.id)
    if not address:
        return Wait(ws, POLL_S, f"waiting for the public IP of {vm.vm}")
    ws = ws.model_copy(update={"address": address})
    try:
        async with connect(ws_vm.ssh_target(ws, ctx.keys, address)) as runner:
            await runner.check(RemoteCommand(("true",), 30))
    except SshConnectionError:
        return Wait(ws, POLL_S, f"waiting for SSH on {vm.vm} ({address})")
    return Moved(ws, trigger, f"VM {vm.vm} is {note} and answers SSH with its pinned host key")


STEPS = {WsState.CREATING: create, WsState.VERIFYING: verify, WsState.DELETING: delete}
