"""capture: deprovision the guest, deallocate, generalize, image (and gallery version), then
start deleting the build VM (relaunch waits for that deletion to end)."""

from __future__ import annotations

import asyncio

from shared import rebuild
from shared.azure import images, lro, vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.manifest.tags import manifest_tags
from shared.remote import render
from shared.ssh.errors import SshConnectionError, SshTurnedAway
from shared.state.record import Build
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.copy_logs import copy_guest_logs, logs_copied
from shared.steps.guest_jobs import last_json, last_lines
from shared.steps.replace_image import capture_name, replacing
from shared.steps.vm_access import open_guest
from shared.target_owners import definition_problem

POLL_S = 3.0
# Seconds, not minutes: cloud-init's clean and the agent's deprovisioning take about one each.
# It runs first in its invocation, inside the hold on the hop (shared/invocation_time.py).
DEPROVISION_TIMEOUT_S = 120
TURNED_AWAY_TRIES = 3
TURNED_AWAY_GAP_S = 5.0


async def capture_image(ctx: StepContext) -> Outcome:
    build = ctx.build
    stage = build.stage
    vm = BuildNames(build.id).vm("build")
    request = ctx.request

    if not build.marker(stage, "deprovision_done"):
        return await _deprovision(ctx, build, stage)

    state = vms.vm_state(ctx.azure, vm.vm)
    trusted_launch = request.security_choice()[0] == "TrustedLaunch"
    if not build.marker(stage, "image_done"):
        if not state.exists:
            raise PermanentError(f"build VM {vm.vm} disappeared before it was captured")
        deallocated = state.power == "deallocated"
        if not deallocated and not build.marker(stage, "deallocate_started"):
            poller = vms.begin_deallocate(ctx.azure, vm.vm)
            build = build.with_progress(stage, deallocate_started=True)
            deallocated = lro.ended(f"deallocation of VM {vm.vm}", poller)
            if not deallocated:
                return Poll(build, lro.retry_after(poller, POLL_S), "deallocating")
        if not deallocated:
            deallocated = lro.wait_until(
                f"VM {vm.vm} is deallocated",
                lambda: vms.vm_state(ctx.azure, vm.vm).power == "deallocated",
            )
        if not deallocated:
            return Poll(build, 0, f"deallocating (VM is {state.power})")
        if not state.generalized:
            vms.generalize(ctx.azure, vm.vm)
        if trusted_launch:
            # Azure makes no managed image from a Trusted Launch VM: the gallery version is
            # captured from the VM itself below.
            build = build.with_progress(stage, image_done=True)
        else:
            made = _capture_managed_image(ctx, build, state, vm.vm)
            if isinstance(made, Poll):
                return made
            build = made

    gallery = request.image.gallery
    if gallery is not None and not build.outputs.get("gallery_image_version_id"):
        g_state, g_id = images.gallery_version_state(
            ctx.azure, gallery.gallery_name, gallery.definition, gallery.version
        )
        if g_state is None:
            # Checked at submission and provision; again here, just before it is published.
            taken = definition_problem(ctx.store, ctx.azure, request, build.by_admin)
            if taken is not None:
                raise PermanentError(taken.message)
            identifier = {
                "publisher": "labimage",
                "offer": request.project,
                "sku": gallery.definition,
            }
            needs = images.DefinitionNeeds(
                _generation(state, vm.vm),
                request.security_choice()[0],
                vms.disk_controller(ctx.azure, vm.vm) == "NVMe",
            )
            if not images.ensure_gallery_definition(
                ctx.azure,
                gallery.gallery_name,
                gallery.definition,
                identifier,
                {images.CREATED_BY_TAG: build.id},
                needs,
            ):
                return Poll(build, POLL_S, f"creating gallery definition {gallery.definition}")
            poller = images.begin_create_gallery_version(
                ctx.azure,
                gallery.gallery_name,
                gallery.definition,
                gallery.version,
                vms.vm_id(ctx.azure, vm.vm) if trusted_launch else build.outputs["image_id"],
                _tags(ctx),
                from_vm=trusted_launch,
            )
            # Waited here, polled at the operation's Retry-After (minutes on Azure).
            what = f"creation of gallery version {gallery.version}"
            if not lro.ended(what, poller):
                note = f"creating gallery version {gallery.version}"
                return Poll(build, lro.retry_after(poller, POLL_S), note)
            g_state, g_id = images.gallery_version_state(
                ctx.azure, gallery.gallery_name, gallery.definition, gallery.version
            )
        elif g_state not in ("Succeeded", "Failed"):
            # Started by an earlier invocation: its end is seen here within a second.
            def ended() -> bool:
                nonlocal g_state, g_id
                g_state, g_id = images.gallery_version_state(
                    ctx.azure, gallery.gallery_name, gallery.definition, gallery.version
                )
                return g_state in (None, "Succeeded", "Failed")

            lro.wait_until(f"gallery version {gallery.version} is created", ended)
        if g_state is None:
            return Poll(build, POLL_S, f"creating gallery version {gallery.version}")
        if g_state == "Failed":
            raise PermanentError(f"Azure could not create gallery image version {gallery.version}")
        if g_state != "Succeeded" or not g_id:
            return Poll(build, POLL_S, f"gallery version {gallery.version} is {g_state}")
        build = build.with_resource("Microsoft.Compute/galleries/images/versions", g_id)
        build = build.with_outputs(gallery_image_version_id=g_id)

    captured = build.outputs.get("image_id") or build.outputs.get("gallery_image_version_id")
    if replacing(build):  # the generalized build VM is captured again once relaunch verified
        return Done(build, f"image {captured} captured; build VM kept to capture it again")
    if state.exists and not build.marker(stage, "vm_delete_started"):
        # Relaunch needs only the image: it starts while the build VM is deleted, and waits
        # for that deletion before it ends (cleanup deletes what is left if it cannot).
        vms.begin_delete_vm(ctx.azure, vm.vm)
        build = build.with_progress(stage, vm_delete_started=True)
    return Done(build, f"image {captured} captured; build VM {vm.vm} is being deleted")


async def _deprovision(ctx: StepContext, build: Build, stage: str) -> Poll:
    """Copy the guest's logs, record that deprovisioning starts, then run it (two hops).

    Deprovisioning runs detached from the session (deprovision.sh), so a session cut mid-way
    or a host recycled mid-invocation never leaves it half done; but it deletes the admin user
    and the host keys, so no later connection can read its report. A later attempt that finds
    its own login turned away, again and again, after deprovisioning was recorded as started,
    knows the agent did its part."""
    if not build.marker(stage, "deprovision_started"):
        if not logs_copied(build, "build"):
            # Deprovisioning removes the job folders: their logs go to Blob storage first.
            async with open_guest(ctx) as runner:
                build = await copy_guest_logs(ctx, runner, "build", build)
        started = build.with_progress(stage, deprovision_started=True)
        return Poll(started, 0, "deprovisioning the guest")
    try:
        async with open_guest(ctx) as runner:
            result = await render.run_now(runner, render.deprovision(), DEPROVISION_TIMEOUT_S)
    except SshConnectionError:
        if not await _turned_away(ctx):
            raise
        done = build.with_progress(stage, deprovision_done=True)
        return Poll(done, 0, "guest deprovisioned by an earlier attempt (its login is refused now)")
    report = last_json(result.stdout) or {}
    if report.get("deprovisioned") is not True:
        raise PermanentError(
            f"deprovisioning did not report done: {last_lines(result.stdout + result.stderr)}"
        )
    # Recorded before any other call: deprovisioning cannot be done twice (the admin user
    # is gone), and a later call's failure must not lose that it was done.
    return Poll(build.with_progress(stage, deprovision_done=True), 0, "guest deprovisioned")


async def _turned_away(ctx: StepContext) -> bool:
    """Whether every one of TURNED_AWAY_TRIES logins, TURNED_AWAY_GAP_S apart, is turned away
    by the guest's SSH server (a one-off drop does not look like that; a timeout or a refused
    port is not a guest that locked us out)."""
    for attempt in range(TURNED_AWAY_TRIES):
        if attempt:
            await asyncio.sleep(TURNED_AWAY_GAP_S)
        try:
            async with open_guest(ctx):
                return False
        except SshTurnedAway:
            continue
        except SshConnectionError:
            return False
    return True


def _capture_managed_image(
    ctx: StepContext, build: Build, state: vms.VmState, vm_name: str
) -> Poll | Build:
    # The requested name, or a temporary one when this build replaces an image; never
    # someone else's image recorded as ours (capture_name refuses that).
    name, build = capture_name(ctx, build)
    image_state, image_id = images.image_state(ctx.azure, name)
    if image_state is None:
        tags = {**_tags(ctx), "labimage-role": "image"}
        vm_id = vms.vm_id(ctx.azure, vm_name)
        poller = images.begin_create_image(
            ctx.azure, name, vm_id, tags, _generation(state, vm_name)
        )
        if not lro.ended(f"image {name}", poller):
            return Poll(build, lro.retry_after(poller, POLL_S), f"creating image {name}")
        image_state, image_id = images.image_state(ctx.azure, name)
    if image_state == "Failed":
        raise PermanentError(f"Azure could not create image {name}")
    if image_state != "Succeeded" or not image_id:
        return Poll(build, POLL_S, f"image {name} is {image_state}")
    build = build.with_resource("Microsoft.Compute/images", image_id)
    return build.with_outputs(image_id=image_id).with_progress(build.stage, image_done=True)


def _generation(state: vms.VmState, vm_name: str) -> str:
    """The build VM's hyperVGeneration, which the image (or definition) must repeat."""
    if not state.exists or not state.hyper_v_generation:
        raise PermanentError(f"build VM {vm_name} is gone or shows no hyperVGeneration")
    return state.hyper_v_generation


def _tags(ctx: StepContext) -> dict[str, str]:
    from shared.steps.vm_access import build_tags

    manifest = (ctx.build.outputs.get("manifest") or {}).get("sha256")
    tags = {**build_tags(ctx, "image"), **manifest_tags(manifest)}
    digest = ctx.build.outputs.get("environment_digest")
    if digest:  # what `rebuild: auto` compares before it starts from this image
        tags[rebuild.DIGEST_TAG] = digest
    return tags
