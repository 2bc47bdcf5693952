"""provision: network, IP, NIC and the build VM with its data disk; done when SSH answers.

The build VM starts from the marketplace image, or (`rebuild: auto`) from an earlier build's
image with the same environment; the choice and its reason are recorded once, at the start.
"""

from __future__ import annotations

from shared import rebuild
from shared.steps.base import Outcome, StepContext
from shared.steps.targets import check_image_targets_free
from shared.steps.vm_access import bring_up_vm, done_or_poll


async def provision_vm(ctx: StepContext) -> Outcome:
    if not ctx.build.marker("provision", "targets_checked"):
        check_image_targets_free(ctx)
        security, reason = ctx.request.security_choice()
        ctx.build = ctx.build.with_progress("provision", targets_checked=True).with_outputs(
            security={"type": security, "reason": reason},
            environment_digest=rebuild.environment_digest(ctx.request),
        )
    if "start" not in ctx.build.outputs:
        choice = _choose_start(ctx)
        where = f"image {choice.image_id}" if choice.image_id else "the marketplace image"
        ctx.build = ctx.build.with_outputs(start=choice.as_dict()).with_event(
            f"building from {where}: {choice.reason}", "provision"
        )
    result = await bring_up_vm(ctx, "build", ctx.build.outputs["start"]["image_id"])
    return done_or_poll(result, "build VM is running and answers SSH with its pinned host key")


def _choose_start(ctx: StepContext) -> rebuild.StartChoice:
    if ctx.request.rebuild != "auto":
        return rebuild.StartChoice(None, None, "the request does not ask to rebuild")
    digest = ctx.build.outputs["environment_digest"]
    return rebuild.choose_start(digest, rebuild.earlier_images(ctx.store(), ctx.azure, ctx.build))
