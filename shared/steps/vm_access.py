"""Bringing one VM of a build to 'running and answering SSH with its pinned key', step by step.

Used by provision (the build VM, from the platform image) and relaunch (from the captured image).
Each call does the next missing piece and answers Poll until the VM answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared import invocation_time, telemetry
from shared.azure import lro, network, vms
from shared.azure.naming import AUTOSTOP_TAG, BUILD_TAG, ROLE_TAG, BuildNames, VmNames
from shared.errors import PermanentError
from shared.ssh.errors import RemoteCommandError, SshConnectionError
from shared.ssh.keys import KeyPair, ensure_build_keys, host_key_cloud_config
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner, SshTarget, connect
from shared.state.record import Build
from shared.steps.base import Done, Poll, StepContext

BOOT_POLL_S = 2.0
SSH_WAIT_S = 50  # one invocation tries SSH on a booting VM this long, then hands back
SSH_RETRY_S = 0.25
NETWORK = "Microsoft.Network"
COMPUTE = "Microsoft.Compute"


def build_tags(ctx: StepContext, role: str) -> dict[str, str]:
    """The request's tags plus ours; every resource a build makes carries them."""
    request = ctx.request
    tags = dict(request.tags or {})
    tags.update({"owner": request.owner, "project": request.project})
    tags.update({BUILD_TAG: ctx.build.id, ROLE_TAG: role})
    return tags


def keep_tags(ctx: StepContext) -> dict[str, str]:
    """Tags of a VM that outlives the build: auto-stop from the request."""
    autostop = ctx.request.autostop
    if autostop is None or not autostop.enabled:
        return {AUTOSTOP_TAG: "off"}
    return {AUTOSTOP_TAG: f"{autostop.time} {autostop.time_zone}"}


async def bring_up_vm(ctx: StepContext, role: str, image_id: str | None = None) -> Poll | Build:
    """Drive one VM to running-with-SSH; Poll while it is not there yet, else the updated build."""
    build = ctx.build
    stage = build.stage
    names = BuildNames(build.id)
    vm = names.vm(role)
    tags = build_tags(ctx, role)
    if role == "relaunch" and ctx.request.relaunch.keep_running:
        tags.update(keep_tags(ctx))
    client, host = ensure_build_keys(ctx.keys, build.id)
    sub = ctx.settings.subscription_id
    group = ctx.settings.resource_group

    subnet_id = build.marker("provision", "subnet_id")
    if subnet_id is None:
        # Recorded before they exist, so cleanup finds them however far creation got.
        build = build.with_resource(
            f"{NETWORK}/networkSecurityGroups", _id(sub, group, "nsg", names.nsg)
        )
        build = build.with_resource(
            f"{NETWORK}/virtualNetworks", _id(sub, group, "vnet", names.vnet)
        )
        subnet_id = network.ensure_network(ctx.azure, names, tags, ctx.settings.ssh_source_cidr)
        if subnet_id is None:
            return Poll(build, BOOT_POLL_S, f"creating the network of build {build.id}")
        build = build.with_progress("provision", subnet_id=subnet_id)
    if not build.marker(stage, f"{role}_vm_create_started"):
        build = build.with_resource(
            f"{NETWORK}/publicIPAddresses", _id(sub, group, "pip", vm.public_ip)
        )
        build = build.with_resource(f"{NETWORK}/networkInterfaces", _id(sub, group, "nic", vm.nic))
        made = network.ensure_vm_nic(ctx.azure, vm, subnet_id, tags)
        if made is None:
            return Poll(build, BOOT_POLL_S, f"creating the IP and NIC of VM {vm.vm}")
        nic_id = made[0]
        build = build.with_event(f"creating VM {vm.vm}")
        poller = vms.begin_create_vm(
            ctx.azure, _vm_spec(ctx, vm, client, host, nic_id, tags, image_id)
        )
        build = build.with_resource(f"{COMPUTE}/virtualMachines", vms.vm_id(ctx.azure, vm.vm))
        build = build.with_resource(f"{COMPUTE}/disks", _id(sub, group, "disk", vm.os_disk))
        build = build.with_resource(f"{COMPUTE}/disks", _id(sub, group, "disk", vm.data_disk))
        build = build.with_progress(stage, **{f"{role}_vm_create_started": True})
        # Waited here, polled at the operation's Retry-After, rather than on a fixed timer.
        if not lro.ended(f"creation of VM {vm.vm}", poller):
            return Poll(build, lro.retry_after(poller, BOOT_POLL_S), f"creating VM {vm.vm}")

    state = vms.vm_state(ctx.azure, vm.vm)
    if not state.exists:
        return Poll(build, BOOT_POLL_S, f"waiting for VM {vm.vm} to appear")
    if state.provisioning == "Failed":
        raise PermanentError(vms.creation_failed(vm.vm, state))
    if not state.running:
        # Created but still starting: read again every second here, not on a later visit.
        def running() -> bool:
            nonlocal state
            state = vms.vm_state(ctx.azure, vm.vm)
            return state.running or state.provisioning == "Failed" or not state.exists

        lro.wait_until(f"VM {vm.vm} runs", running)
        if state.provisioning == "Failed":
            raise PermanentError(vms.creation_failed(vm.vm, state))
        if not state.running:
            return Poll(build, 0, f"VM {vm.vm} is {state.power or state.provisioning}")
    address = network.public_ip_address(ctx.azure, vm)
    if not address:
        return Poll(build, BOOT_POLL_S, f"waiting for the public IP of {vm.vm}")
    build = build.with_progress(stage, **{f"{role}_address": address})
    if not await _ssh_answers(_target(ctx, build, vm, address), SSH_WAIT_S):
        return Poll(build, 0, f"waiting for SSH on {vm.vm} ({address})")
    return build


async def _ssh_answers(target: SshTarget, wait_s: float) -> bool:
    """Try SSH until the booting guest answers with its pinned key, or `wait_s` is over."""
    deadline = time.monotonic() + invocation_time.bounded(wait_s)
    with telemetry.span(f"ssh connect wait {target.host}"):
        while True:
            try:
                async with connect(target) as runner:
                    await runner.check(RemoteCommand(("true",), 30))
                return True
            except SshConnectionError:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(SSH_RETRY_S)


@asynccontextmanager
async def open_guest(ctx: StepContext, role: str = "build") -> AsyncIterator[SshRunner]:
    """An SSH session to a running VM of the build, host key pinned. Connection trouble is a
    temporary error, unless the VM itself has stopped: then the build cannot go on."""
    build = ctx.build
    vm = BuildNames(build.id).vm(role)
    stage = "provision" if role == "build" else "relaunch"
    address = build.marker(stage, f"{role}_address")
    if not address:
        raise PermanentError(f"no address recorded for VM {vm.vm}")
    try:
        async with connect(_target(ctx, build, vm, address)) as runner:
            yield runner
    except (SshConnectionError, RemoteCommandError) as exc:
        # A VM that died mid-command shows up as a dropped connection or a 255 exit: ask
        # Azure whether the VM still runs before blaming the guest.
        state = vms.vm_state(ctx.azure, vm.vm)
        if not state.exists or state.provisioning == "Deleting":
            raise PermanentError(
                f"VM {vm.vm} was deleted from outside the build while the build needed it: {exc}"
            ) from exc
        if not state.running:
            raise PermanentError(
                f"VM {vm.vm} stopped unexpectedly (power state: {state.power or 'unknown'}, "
                f"exists: {state.exists}) while the build needed it: {exc}"
            ) from exc
        raise


def _target(ctx: StepContext, build: Build, vm: VmNames, address: str) -> SshTarget:
    client = ctx.keys.load(build.id, "client")
    host = ctx.keys.load(build.id, "host")
    return SshTarget(
        host=address,
        port=22,
        username=ctx.request.vm.admin_username,
        client_private_key=client.private_openssh,
        host_public_key=host.public_line,
    )


def _vm_spec(
    ctx: StepContext,
    vm: VmNames,
    client: KeyPair,
    host: KeyPair,
    nic_id: str,
    tags: dict[str, str],
    image_id: str | None,
) -> vms.VmSpec:
    request = ctx.request
    image = request.vm.image
    return vms.VmSpec(
        names=vm,
        size=request.vm.size,
        admin_username=request.vm.admin_username,
        ssh_public_key=client.public_line,
        custom_data=host_key_cloud_config(host.private_openssh, host.public_line),
        nic_id=nic_id,
        tags=tags,
        data_disk_lun=request.data_disk.lun,
        data_disk_size_gb=request.data_disk.size_gb,
        platform_image=None
        if image_id
        else {
            "publisher": image.publisher,
            "offer": image.offer,
            "sku": image.sku,
            "version": image.version,
        },
        image_id=image_id,
        security_type=request.security_choice()[0],
        spot=request.vm.spot,
        spot_max_price=getattr(request.vm, "max_price", None),
        os_disk_size_gb=getattr(request.vm, "os_disk_size_gb", None),
    )


_KINDS = {
    "nsg": "Microsoft.Network/networkSecurityGroups",
    "vnet": "Microsoft.Network/virtualNetworks",
    "pip": "Microsoft.Network/publicIPAddresses",
    "nic": "Microsoft.Network/networkInterfaces",
    "disk": "Microsoft.Compute/disks",
}


def _id(sub: str, group: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{_KINDS[kind]}/{name}"


def done_or_poll(result: Poll | Build, note: str) -> Done | Poll:
    return result if isinstance(result, Poll) else Done(result, note)
