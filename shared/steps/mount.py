"""mount: find the data disk by LUN, partition and format it only if empty, mount it by UUID."""

from __future__ import annotations

from shared.errors import PermanentError
from shared.remote import render
from shared.ssh.jobs import read_job_file
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import drive_job, last_json
from shared.steps.vm_access import open_guest

MOUNT_TIMEOUT_S = 900


async def mount_data_disk(ctx: StepContext) -> Outcome:
    disk = ctx.request.data_disk
    async with open_guest(ctx) as runner:
        result = await drive_job(
            runner,
            ctx.build,
            "mount-disk",
            lambda: render.mount_disk(disk.lun, disk.mount_point, disk.filesystem),
            MOUNT_TIMEOUT_S,
            "mounting the data disk",
        )
        if isinstance(result, Poll):
            return result
        mount = last_json(await read_job_file(runner, "mount-disk", "log"))
    if mount is None:
        raise PermanentError("mounting the data disk printed no result")
    build = result.with_outputs(data_disk=mount)
    return Done(build, f"data disk mounted at {disk.mount_point} (UUID {mount.get('uuid')})")
