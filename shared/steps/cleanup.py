"""cleanup: delete what this build created and does not keep, in dependency order.

Runs after success too (the build's network and the relaunched VM go, the image stays). Touches
only resources the build recorded, re-checks that each exists, and when it finally gives up it
names what is left so a person can delete it.
"""

from __future__ import annotations

from shared.azure import resources as arm
from shared.errors import PermanentError, StepError
from shared.state.record import BuildState
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.copy_logs import copy_logs_before_delete

POLL_S = 3.0
MAX_POLLS = 400
LOGGED_VMS = ("build", "relaunch")
KEPT_ON_SUCCESS = {"Microsoft.Compute/images", "Microsoft.Compute/galleries/images/versions"}


async def clean_up(ctx: StepContext) -> Outcome:
    for role in LOGGED_VMS:  # before anything is deleted: a failed build's logs too
        ctx.build = await copy_logs_before_delete(ctx, role)
    build = ctx.build
    stage = build.stage
    succeeded = build.outcome in (None, BuildState.SUCCEEDED)
    targets = [
        r for r in build.resources if not r.kept and not (succeeded and r.type in KEPT_ON_SUCCESS)
    ]
    problems: list[str] = []
    for type_ in arm.DELETE_ORDER:
        pending = []
        for resource in (r for r in targets if r.type == type_):
            try:
                if not arm.exists(ctx.azure, type_, resource.id):
                    continue
                pending.append(resource.id)
                marker = f"delete:{resource.id}"
                if not build.marker(stage, marker):
                    arm.begin_delete(ctx.azure, type_, resource.id)
                    build = build.with_progress(stage, **{marker: True})
            except StepError as exc:
                pending.append(resource.id)
                problems.append(str(exc))
        if pending:
            polls = build.stage_record(stage).polls
            if polls >= MAX_POLLS:
                raise PermanentError(
                    "cleanup gave up; delete these by hand: "
                    + ", ".join(pending)
                    + (f" (last errors: {'; '.join(problems[-3:])})" if problems else "")
                )
            if problems:
                # A refused delete (e.g. still attached) is retried on the next poll.
                build = build.with_progress(stage, **{f"delete:{p}": None for p in pending})
            return Poll(build, POLL_S, f"deleting {len(pending)} {type_.rsplit('/', 1)[-1]}")
    if not any(r.kept for r in build.resources):
        ctx.keys.delete(build.id)
    kept = [r.id for r in build.resources if r.kept]
    note = f"cleaned up {len(targets)} resource(s)" + (f"; kept {len(kept)}" if kept else "")
    return Done(build, note)
