"""cleanup: delete what this build created and does not keep, in dependency order; what does
not depend on each other goes at once.

Runs after success too (the build's network and the relaunched VM go, the image stays). Touches
only resources the build recorded, re-checks that each exists, and when it finally gives up it
names what is left so a person can delete it.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from shared import invocation_time
from shared.azure import lro
from shared.azure import resources as arm
from shared.errors import PermanentError, StepError
from shared.state.record import Build, BuildState, Resource
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.copy_logs import copy_logs_before_delete

POLL_S = 3.0
MAX_POLLS = 400
LOGGED_VMS = ("build", "relaunch")
KEPT_ON_SUCCESS = {"Microsoft.Compute/images", "Microsoft.Compute/galleries/images/versions"}
# Deleted together, wave after wave: a wave holds what nothing in a later wave needs gone
# first. VMs hold their NICs and disks; a NIC holds its public IP and the subnet; the subnet
# refers to the NSG. Images and gallery versions wait for the VMs made from them.
WAVES: tuple[tuple[str, ...], ...] = (
    ("Microsoft.Compute/virtualMachines",),
    (
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Compute/disks",
        "Microsoft.Compute/galleries/images/versions",
        "Microsoft.Compute/images",
    ),
    ("Microsoft.Network/publicIPAddresses", "Microsoft.Network/virtualNetworks"),
    ("Microsoft.Network/networkSecurityGroups",),
)
assert sorted(t for wave in WAVES for t in wave) == sorted(arm.DELETE_ORDER)


async def clean_up(ctx: StepContext) -> Outcome:
    for role in LOGGED_VMS:  # before anything is deleted: a failed build's logs too
        ctx.build = await copy_logs_before_delete(ctx, role)
    build = ctx.build
    succeeded = build.outcome in (None, BuildState.SUCCEEDED)
    targets = [
        r for r in build.resources if not r.kept and not (succeeded and r.type in KEPT_ON_SUCCESS)
    ]
    for wave in WAVES:
        build, pending, problems = _delete_wave(ctx, build, [r for r in targets if r.type in wave])
        if pending:
            polls = build.stage_record(build.stage).polls
            if polls >= MAX_POLLS:
                raise PermanentError(
                    "cleanup gave up; delete these by hand: "
                    + ", ".join(pending)
                    + (f" (last errors: {'; '.join(problems[-3:])})" if problems else "")
                )
            if problems:
                # A refused delete (e.g. still attached) is retried on the next poll.
                build = build.with_progress(build.stage, **{f"delete:{p}": None for p in pending})
            kinds = sorted({r.type.rsplit("/", 1)[-1] for r in targets if r.id in pending})
            after_s = POLL_S if problems else 0  # not gone yet: the next visit waits again
            return Poll(build, after_s, f"deleting {len(pending)} resource(s): {', '.join(kinds)}")
    if not any(r.kept for r in build.resources):
        ctx.keys.delete(build.id)
    kept = [r.id for r in build.resources if r.kept]
    note = f"cleaned up {len(targets)} resource(s)" + (f"; kept {len(kept)}" if kept else "")
    return Done(build, note)


def _delete_wave(
    ctx: StepContext, build: Build, wave: list[Resource]
) -> tuple[Build, list[str], list[str]]:
    """Start deleting every resource of the wave, then wait (together, each operation polled
    at its Retry-After) for those started now; (build, ids still there, errors)."""
    stage = build.stage
    pending: list[str] = []
    problems: list[str] = []
    started: list[tuple[str, Any]] = []
    for resource in wave:
        try:
            if not arm.exists(ctx.azure, resource.type, resource.id):
                continue
            marker = f"delete:{resource.id}"
            if not build.marker(stage, marker):
                started.append(
                    (resource.id, arm.begin_delete(ctx.azure, resource.type, resource.id))
                )
                build = build.with_progress(stage, **{marker: True})
            else:
                started.append((resource.id, None))  # started by an earlier invocation
        except StepError as exc:
            pending.append(resource.id)
            problems.append(str(exc))
    deadline = time.monotonic() + invocation_time.bounded(lro.LRO_WAIT_S)
    for resource_id, poller in started:
        try:
            wait_s = max(0.0, deadline - time.monotonic())
            if poller is not None:
                gone = lro.ended(f"deletion of {resource_id}", poller, wait_s)
            else:
                gone = lro.wait_until(
                    f"{resource_id} is gone", partial(_gone, ctx, resource_id, wave), wait_s
                )
            if not gone:
                pending.append(resource_id)
        except StepError as exc:
            pending.append(resource_id)
            problems.append(str(exc))
    return build, pending, problems


def _gone(ctx: StepContext, resource_id: str, wave: list[Resource]) -> bool:
    type_ = next(r.type for r in wave if r.id == resource_id)
    return not arm.exists(ctx.azure, type_, resource_id)
