"""capture: deprovision the guest, deallocate, generalize, image (and gallery version), then
delete the build VM."""

from __future__ import annotations

from shared.azure import images, vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.remote import render
from shared.state.record import Build
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.copy_logs import copy_guest_logs, logs_copied
from shared.steps.guest_jobs import last_json, last_lines
from shared.steps.replace_image import capture_name, replacing
from shared.steps.vm_access import open_guest

POLL_S = 3.0
# Seconds, not minutes: cloud-init's clean and the agent's deprovisioning take about one each.
DEPROVISION_TIMEOUT_S = 240


async def capture_image(ctx: StepContext) -> Outcome:
    build = ctx.build
    stage = build.stage
    vm = BuildNames(build.id).vm("build")
    request = ctx.request

    if not build.marker(stage, "deprovision_done"):
        # Run in the session and wait for its report: the agent deletes the admin user, so no
        # later connection could poll a detached job. The session outlives the user.
        async with open_guest(ctx) as runner:
            # Deprovisioning removes the job folders: their logs go to Blob storage first.
            if not logs_copied(build, "build"):
                build = await copy_guest_logs(ctx, runner, "build", build)
            result = await render.run_now(runner, render.deprovision(), DEPROVISION_TIMEOUT_S)
        report = last_json(result.stdout) or {}
        if report.get("deprovisioned") is not True:
            raise PermanentError(
                f"deprovisioning did not report done: {last_lines(result.stdout + result.stderr)}"
            )
        build = build.with_progress(stage, deprovision_done=True)

    state = vms.vm_state(ctx.azure, vm.vm)
    trusted_launch = request.security_choice()[0] == "TrustedLaunch"
    if not build.marker(stage, "image_done"):
        if not state.exists:
            raise PermanentError(f"build VM {vm.vm} disappeared before it was captured")
        if not build.marker(stage, "deallocate_started"):
            vms.begin_deallocate(ctx.azure, vm.vm)
            return Poll(build.with_progress(stage, deallocate_started=True), POLL_S, "deallocating")
        if state.power != "deallocated":
            return Poll(build, POLL_S, f"deallocating (VM is {state.power})")
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
                {"labimage-created-by": build.id},
                needs,
            ):
                return Poll(build, POLL_S, f"creating gallery definition {gallery.definition}")
            images.begin_create_gallery_version(
                ctx.azure,
                gallery.gallery_name,
                gallery.definition,
                gallery.version,
                vms.vm_id(ctx.azure, vm.vm) if trusted_launch else build.outputs["image_id"],
                _tags(ctx),
                from_vm=trusted_launch,
            )
            return Poll(build, POLL_S, f"creating gallery version {gallery.version}")
        if g_state == "Failed":
            raise PermanentError(f"Azure could not create gallery image version {gallery.version}")
        if g_state != "Succeeded" or not g_id:
            return Poll(build, POLL_S, f"gallery version {gallery.version} is {g_state}")
        build = build.with_resource("Microsoft.Compute/galleries/images/versions", g_id)
        build = build.with_outputs(gallery_image_version_id=g_id)

    if state.exists and not replacing(build):  # a replacing build captures it again later
        if not build.marker(stage, "vm_delete_started"):
            vms.begin_delete_vm(ctx.azure, vm.vm)
            build = build.with_progress(stage, vm_delete_started=True)
        return Poll(build, POLL_S, f"deleting build VM {vm.vm}")
    captured = build.outputs.get("image_id") or build.outputs.get("gallery_image_version_id")
    if replacing(build):
        return Done(build, f"image {captured} captured; build VM kept to capture it again")
    return Done(build, f"image {captured} captured; build VM deleted")


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
        images.begin_create_image(ctx.azure, name, vm_id, tags, _generation(state, vm_name))
        return Poll(build, POLL_S, f"creating image {name}")
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

    return build_tags(ctx, "image")
