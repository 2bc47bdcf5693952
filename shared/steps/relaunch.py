"""relaunch: a new VM from the image (made while the build VM is still being deleted), no mount
step; the data disk must be mounted by fstab alone, then verify again; the VM is deleted, or
kept with its auto-stop tag and connection commands. Ends once the build VM is gone too."""

from __future__ import annotations

import json

from shared.azure import images, lro, vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.remote import render
from shared.ssh.keyvault import download_command
from shared.state.record import Build
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.copy_logs import copy_guest_logs
from shared.steps.replace_image import replacing, swap_image
from shared.steps.verify import JUPYTER_PORT, verify_guest
from shared.steps.vm_access import bring_up_vm, open_guest

TUNNEL_LOCAL_PORT = 7005  # the seed recipe's `ssh -N -L 7005:localhost:8889`


async def relaunch_vm(ctx: StepContext) -> Outcome:
    """The relaunch proper, then (for a replacing build) the image takes its name."""
    stage = ctx.build.stage
    if not ctx.build.marker(stage, "relaunch_done"):
        outcome = await _relaunch(ctx)
        if isinstance(outcome, Poll) or not replacing(outcome.build):
            return outcome
        ctx.build = outcome.build.with_progress(stage, relaunch_done=True, note=outcome.note)
    swapped = await swap_image(ctx, ctx.build)
    if isinstance(swapped, Poll):
        return swapped
    return Done(swapped, f"{swapped.marker(stage, 'note')}; {_replace_note(swapped)}")


def _replace_note(build: Build) -> str:
    decision = build.outputs.get("replace") or {}
    if decision.get("outcome") == "replaced":
        return f"the old image was replaced by the verified one ({decision['image_id']})"
    return f"the verified image is {decision.get('temporary_name')}: {decision.get('reason')}"


async def _relaunch(ctx: StepContext) -> Outcome:
    request = ctx.request
    stage = ctx.build.stage
    names = BuildNames(ctx.build.id)
    vm = names.vm("relaunch")
    # What users will start their VMs from: the gallery version when there is one.
    if request.image.gallery is not None:
        image_id = ctx.build.outputs.get("gallery_image_version_id")
    else:
        image_id = ctx.build.outputs.get("image_id")
    if not image_id:
        raise PermanentError("no image to relaunch from")

    build = ctx.build
    if not request.relaunch.verify and not request.relaunch.keep_running:
        return _after_build_vm_deleted(
            ctx, build, "relaunch skipped: the request asks neither to verify nor to keep a VM"
        )
    if not build.marker(stage, "checked"):
        up = await bring_up_vm(ctx, "relaunch", image_id)
        if isinstance(up, Poll):
            return up
        build = up
        ctx.build = build
        async with open_guest(ctx, "relaunch") as runner:
            if not build.marker(stage, "mount_ok"):
                mount_point = request.data_disk.mount_point
                result = await render.run_now(runner, render.check_mount(mount_point), 60)
                mount = json.loads(result.stdout.strip().splitlines()[-1])
                if not mount.get("mounted") or not mount.get("in_fstab_by_uuid"):
                    raise PermanentError(
                        f"the data disk is not mounted at {mount_point} on the relaunched VM "
                        f"by fstab alone: {mount}"
                    )
                build = build.with_progress(stage, mount_ok=True).with_outputs(relaunch_mount=mount)
            if request.relaunch.verify:
                verified = await verify_guest(ctx, runner, build, "relaunch_verification")
                if isinstance(verified, Poll):
                    return verified
                build = verified
            build = await copy_guest_logs(ctx, runner, "relaunch", build)
        build = build.with_progress(stage, checked=True)

    if request.relaunch.keep_running:
        build = _keep(ctx, build)
        return _after_build_vm_deleted(
            ctx, build, f"relaunched VM {vm.vm} verified and kept running"
        )
    state = vms.vm_state(ctx.azure, vm.vm)
    if state.exists:
        if build.marker(stage, "delete_started"):
            gone = lro.wait_until(f"VM {vm.vm} is gone", lambda: _vm_gone(ctx, vm.vm))
        else:
            poller = vms.begin_delete_vm(ctx.azure, vm.vm)
            build = build.with_progress(stage, delete_started=True)
            gone = lro.ended(f"deletion of VM {vm.vm}", poller)
        if not gone:
            return Poll(build, 0, f"deleting relaunched VM {vm.vm}")
    return _after_build_vm_deleted(ctx, build, "relaunched VM verified and deleted")


def _vm_gone(ctx: StepContext, name: str) -> bool:
    return not vms.vm_state(ctx.azure, name).exists


def _after_build_vm_deleted(ctx: StepContext, build: Build, note: str) -> Done | Poll:
    """Done once the build VM, whose deletion capture started, is gone (a replacing build
    keeps it to capture it again; cleanup deletes it)."""
    build_vm = BuildNames(build.id).vm("build").vm
    if replacing(build):
        return Done(build, note)
    if not lro.wait_until(f"build VM {build_vm} is gone", lambda: _vm_gone(ctx, build_vm)):
        return Poll(build, 0, f"waiting for the deletion of build VM {build_vm}")
    _images_still_there(ctx, build)
    return Done(build, note)


def _images_still_there(ctx: StepContext, build: Build) -> None:
    """A build succeeds only with the image it made: one deleted from outside after capture
    (Azure allows it once no VM is being provisioned from it) fails the build, naming it."""
    gallery = ctx.request.image.gallery
    if build.outputs.get("gallery_image_version_id") and gallery is not None:
        state, _ = images.gallery_version_state(
            ctx.azure, gallery.gallery_name, gallery.definition, gallery.version
        )
        if state is None:
            raise PermanentError(
                f"gallery image version {gallery.gallery_name}/{gallery.definition}/"
                f"{gallery.version} was deleted from outside the build after it was captured"
            )
    image_id = build.outputs.get("image_id")
    if image_id:
        name = str(image_id).rsplit("/", 1)[-1]
        if images.image_state(ctx.azure, name)[0] is None:
            raise PermanentError(
                f"image {name} was deleted from outside the build after it was captured"
            )


def _keep(ctx: StepContext, build: Build) -> Build:
    """Mark what the kept VM needs so cleanup leaves it, and say how to reach it."""
    names = BuildNames(build.id)
    vm = names.vm("relaunch")
    keep_names = {vm.vm, vm.nic, vm.public_ip, vm.os_disk, vm.data_disk, names.vnet, names.nsg}
    resources = [
        r.model_copy(update={"kept": True}) if r.id.rsplit("/", 1)[-1] in keep_names else r
        for r in build.resources
    ]
    address = build.marker("relaunch", "relaunch_address")
    user = ctx.request.vm.admin_username
    key = f"~/.ssh/labimage-{build.id}"
    known_hosts = f"~/.ssh/labimage-{build.id}.known_hosts"
    # The VM's host key is the one the controller made and pinned: give it to the user too, so
    # the first connection is checked rather than trusted.
    host_key = " ".join(ctx.keys.load(build.id, "host").public_line.split()[:2])
    ssh = f"ssh -i {key} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts}"
    connection = {
        "vm_name": vm.vm,
        "address": address,
        "key": _key_instructions(ctx, build.id, key),
        "known_hosts_line": f"{address} {host_key}",
        "known_hosts_file": known_hosts,
        "ssh_command": f"{ssh} {user}@{address}",
        "tunnel_command": (
            f"{ssh} -N -L {TUNNEL_LOCAL_PORT}:localhost:{JUPYTER_PORT} {user}@{address}"
        ),
        "start_jupyter": (
            f"{ssh} {user}@{address} /opt/labimage/env/bin/jupyter lab --no-browser "
            f"--ip=127.0.0.1 --port={JUPYTER_PORT}"
        ),
        "jupyter_url": f"http://localhost:{TUNNEL_LOCAL_PORT}/",
    }
    return build.model_copy(update={"resources": resources}).with_outputs(connection=connection)


def _key_instructions(ctx: StepContext, build_id: str, key: str) -> str:
    """How to get the client private key to `key`, from wherever the controller keeps it."""
    vault_url = ctx.settings.key_vault_url
    if vault_url:
        fetch = download_command(vault_url, build_id, key)
        return f"fetch the build's private key from Key Vault {vault_url}: {fetch}"
    return (
        f"save the build's private key as {key} (chmod 600); it is in the controller's key "
        f"folder {ctx.settings.ssh_key_dir} as {build_id}.client"
    )
