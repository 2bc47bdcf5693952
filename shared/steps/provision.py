"""provision: network, IP, NIC and the build VM with its data disk; done when SSH answers."""

from __future__ import annotations

from shared.steps.base import Outcome, StepContext
from shared.steps.targets import check_image_targets_free
from shared.steps.vm_access import bring_up_vm, done_or_poll


async def provision_vm(ctx: StepContext) -> Outcome:
    if not ctx.build.marker("provision", "targets_checked"):
        check_image_targets_free(ctx)
        security, reason = ctx.request.security_choice()
        ctx.build = ctx.build.with_progress("provision", targets_checked=True).with_outputs(
            security={"type": security, "reason": reason}
        )
    result = await bring_up_vm(ctx, "build")
    return done_or_poll(result, "build VM is running and answers SSH with its pinned host key")
