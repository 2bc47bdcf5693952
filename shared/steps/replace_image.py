"""Replacing an image (`image.replace`): the old image goes only after the new one is verified.

Azure cannot rename a managed image, and a managed image cannot be made from another one (its
source is a VM, a disk, a snapshot or a blob). So a replacing build:

1. at capture, finds the name taken by an image another labimage build made, and captures under
   a temporary name instead (`<name, cut>-<build id>`); the generalized build VM is kept;
2. relaunches from, and verifies, that temporary image;
3. then (`swap_image`, the end of relaunch) marks the temporary image kept, deletes the old
   image, captures the same generalized build VM again under the requested name, and deletes
   the temporary image. The two captures hold the same disks: the verified one and the named
   one differ only in name.

A failed build before step 3 leaves the old image untouched (cleanup deletes the temporary one).
Should the second capture fail, the build still succeeds with the verified temporary image as
its image, and says so in its outputs and events: the team always keeps a verified image.
"""

from __future__ import annotations

from typing import Any

from shared.azure import images, vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError
from shared.state.record import Build
from shared.steps.base import Poll, StepContext
from shared.steps.vm_access import build_tags
from shared.target_owners import image_refusal, made_for

POLL_S = 3.0
BUSY_POLL_S = 30.0  # a VM being provisioned from the old image takes minutes on Azure
REPLACE_OUTPUT = "replace"
IMAGE_TYPE = "Microsoft.Compute/images"
MAX_IMAGE_NAME = 80


def temporary_name(name: str, build_id: str) -> str:
    """Where a replacing build captures first; a valid image name (ends with the build id)."""
    return f"{name[: MAX_IMAGE_NAME - len(build_id) - 1]}-{build_id}"


def capture_name(ctx: StepContext, build: Build) -> tuple[str, Build]:
    """The name capture writes to, and the build with the decision recorded: the requested
    name, or a temporary one when this build replaces an image another labimage build made.
    An image of that name made outside labimage, or (unless an administrator submitted this
    build) by a build of another owner, is never replaced (PermanentError): checked again
    here, since the image may have been replaced since provision checked it."""
    name = ctx.request.image.name
    recorded = build.outputs.get(REPLACE_OUTPUT)
    if recorded:
        return str(recorded["temporary_name"]), build
    exists, owner = images.image_build_tag(ctx.azure, name)
    if not exists or owner == build.id:
        return name, build
    if not ctx.request.image.replace or not owner:
        made_by = f"build {owner}" if owner else "someone outside labimage"
        hint = "" if not owner else ", or set image.replace to true"
        raise PermanentError(
            f"image {name} already exists (made by {made_by}); choose another image.name{hint}"
        )
    if not build.by_admin and not made_for(ctx.store(), owner, build.owner):
        raise PermanentError(image_refusal(name))
    _, old_id = images.image_state(ctx.azure, name)
    temp = temporary_name(name, build.id)
    decision = {"old_image_id": old_id, "old_build": owner, "temporary_name": temp}
    return temp, build.with_outputs(**{REPLACE_OUTPUT: decision}).with_event(
        f"image {name} (build {owner}) will be replaced once the new image, captured as "
        f"{temp}, is verified"
    )


def replacing(build: Build) -> bool:
    return bool(build.outputs.get(REPLACE_OUTPUT))


async def swap_image(ctx: StepContext, build: Build) -> Build | Poll:
    """Step 3 of the module docstring; the build when the swap is over (or not needed)."""
    decision: dict[str, Any] | None = build.outputs.get(REPLACE_OUTPUT)
    if not decision or decision.get("outcome"):
        return build
    stage, name, temp = build.stage, ctx.request.image.name, decision["temporary_name"]
    temp_id = next(
        (r.id for r in build.resources if r.type == IMAGE_TYPE and r.id.endswith(f"/{temp}")), ""
    )
    if not build.marker(stage, "temporary_kept"):
        build = _keep_resource(build, temp_id).with_progress(stage, temporary_kept=True)
    if not build.marker(stage, "old_deleted"):
        state, found = images.image_state(ctx.azure, name)
        if state is not None and (found or "").lower() == str(decision["old_image_id"]).lower():
            if not build.marker(stage, "old_delete_started"):
                refused = images.begin_delete_image(ctx.azure, name)
                if refused:  # a VM is still being provisioned from it: wait for that
                    return Poll(build, BUSY_POLL_S, f"the old image cannot go yet: {refused}")
                build = build.with_progress(stage, old_delete_started=True)
            return Poll(build, POLL_S, f"deleting the old image {name}")
        build = build.with_progress(stage, old_deleted=True).with_event(
            f"old image {name} (build {decision['old_build']}) deleted"
        )
    state, final_id = images.image_state(ctx.azure, name)
    if state is None:
        vm = BuildNames(build.id).vm("build").vm
        vm_state = vms.vm_state(ctx.azure, vm)
        if not vm_state.exists or not vm_state.hyper_v_generation:
            return _settle(build, decision, temp_id, f"build VM {vm} is gone")
        tags = {**build_tags(ctx, "image"), "labimage-role": "image"}
        images.begin_create_image(
            ctx.azure, name, vms.vm_id(ctx.azure, vm), tags, vm_state.hyper_v_generation
        )
        return Poll(build, POLL_S, f"capturing the verified image again as {name}")
    _, owner = images.image_build_tag(ctx.azure, name)
    if owner != build.id:
        taken = f"{name} was taken meanwhile by {owner or 'someone outside labimage'}"
        return _settle(build, decision, temp_id, taken)
    if state == "Failed":
        return _settle(build, decision, temp_id, f"Azure could not capture {name} again")
    if state != "Succeeded" or not final_id:
        return Poll(build, POLL_S, f"image {name} is {state}")
    build = build.with_resource(IMAGE_TYPE, final_id).with_outputs(image_id=final_id)
    temp_state, _ = images.image_state(ctx.azure, temp)
    if temp_state is not None:
        if not build.marker(stage, "temporary_delete_started"):
            refused = images.begin_delete_image(ctx.azure, temp)
            if refused:
                return Poll(build, BUSY_POLL_S, f"the temporary image cannot go yet: {refused}")
            build = build.with_progress(stage, temporary_delete_started=True)
        return Poll(build, POLL_S, f"deleting the temporary image {temp}")
    resources = [r for r in build.resources if r.id.lower() != temp_id.lower()]
    outcome = {**decision, "outcome": "replaced", "verified_as": temp, "image_id": final_id}
    return (
        build.model_copy(update={"resources": resources})
        .with_outputs(**{REPLACE_OUTPUT: outcome})
        .with_event(
            f"image {name} replaced: captured again from the disks verified as {temp}, "
            "which is deleted"
        )
    )


def _keep_resource(build: Build, resource_id: str) -> Build:
    resources = [
        r.model_copy(update={"kept": True}) if r.id.lower() == resource_id.lower() else r
        for r in build.resources
    ]
    return build.model_copy(update={"resources": resources})


def _settle(build: Build, decision: dict[str, Any], temp_id: str, why: str) -> Build:
    """The second capture cannot happen: the verified temporary image is the build's image."""
    outcome = {**decision, "outcome": "kept-temporary", "image_id": temp_id, "reason": why}
    return build.with_outputs(**{REPLACE_OUTPUT: outcome}, image_id=temp_id).with_event(
        f"the old image is gone but the new one could not take its name ({why}); the verified "
        f"image is {decision['temporary_name']}"
    )
