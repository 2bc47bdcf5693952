"""capture: deprovision the guest, deallocate, generalize, image (and gallery version), then
delete the build VM."""

from __future__ import annotations

from shared.azure import images, vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.remote import render
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.targets import check_image_targets_free
from shared.steps.vm_access import open_guest

POLL_S = 3.0
DEPROVISION_SETTLE_S = 8.0  # the agent needs a moment; its user is gone, so it cannot be polled


async def capture_image(ctx: StepContext) -> Outcome:
    build = ctx.build
    stage = build.stage
    vm = BuildNames(build.id).vm("build")
    request = ctx.request

    if not build.marker(stage, "deprovision_started"):
        async with open_guest(ctx) as runner:
            await render.start(runner, "deprovision", render.deprovision(), 300)
        build = build.with_progress(stage, deprovision_started=True)
        return Poll(build, DEPROVISION_SETTLE_S, "deprovisioning the guest (waagent)")

    state = vms.vm_state(ctx.azure, vm.vm)
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
        tags = {**_tags(ctx), "labimage-role": "image"}
        image_state, image_id = images.image_state(ctx.azure, request.image.name)
        if image_state is not None:
            check_image_targets_free(ctx)  # never record someone else's image as ours
        if image_state is None:
            images.begin_create_image(
                ctx.azure, request.image.name, vms.vm_id(ctx.azure, vm.vm), tags
            )
            return Poll(build, POLL_S, f"creating image {request.image.name}")
        if image_state == "Failed":
            raise PermanentError(f"Azure could not create image {request.image.name}")
        if image_state != "Succeeded" or not image_id:
            return Poll(build, POLL_S, f"image {request.image.name} is {image_state}")
        build = build.with_resource("Microsoft.Compute/images", image_id)
        build = build.with_outputs(image_id=image_id).with_progress(stage, image_done=True)

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
            if not images.ensure_gallery_definition(
                ctx.azure,
                gallery.gallery_name,
                gallery.definition,
                identifier,
                {"labimage-created-by": build.id},
            ):
                return Poll(build, POLL_S, f"creating gallery definition {gallery.definition}")
            images.begin_create_gallery_version(
                ctx.azure,
                gallery.gallery_name,
                gallery.definition,
                gallery.version,
                build.outputs["image_id"],
                _tags(ctx),
            )
            return Poll(build, POLL_S, f"creating gallery version {gallery.version}")
        if g_state == "Failed":
            raise PermanentError(f"Azure could not create gallery image version {gallery.version}")
        if g_state != "Succeeded" or not g_id:
            return Poll(build, POLL_S, f"gallery version {gallery.version} is {g_state}")
        build = build.with_resource("Microsoft.Compute/galleries/images/versions", g_id)
        build = build.with_outputs(gallery_image_version_id=g_id)

    if state.exists:
        if not build.marker(stage, "vm_delete_started"):
            vms.begin_delete_vm(ctx.azure, vm.vm)
            build = build.with_progress(stage, vm_delete_started=True)
        return Poll(build, POLL_S, f"deleting build VM {vm.vm}")
    return Done(build, f"image {build.outputs['image_id']} captured; build VM deleted")


def _tags(ctx: StepContext) -> dict[str, str]:
    from shared.steps.vm_access import build_tags

    return build_tags(ctx, "image")
