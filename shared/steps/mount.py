"""mount: find the data disk by LUN, partition and format it only if empty, mount it by UUID."""

from __future__ import annotations

import json

from shared.errors import PermanentError
from shared.ssh.jobs import read_job_file
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import drive_job
from shared.steps.vm_access import open_guest

MOUNT_TIMEOUT_S = 900


async def mount_data_disk(ctx: StepContext) -> Outcome:
    disk = ctx.request.data_disk
    async with open_guest(ctx) as runner:
        result = await drive_job(
            runner,
            ctx.build,
            "mount-disk",
            "mount_disk.sh",
            [str(disk.lun), disk.mount_point, disk.filesystem],
            MOUNT_TIMEOUT_S,
            what="mounting the data disk",
        )
        if isinstance(result, Poll):
            return result
        log = await read_job_file(runner, "mount-disk", "log")
    mount = _last_json(log)
    if mount is None:
        raise PermanentError("mounting the data disk printed no result")
    build = result.with_outputs(data_disk=mount)
    return Done(build, f"data disk mounted at {disk.mount_point} (UUID {mount.get('uuid')})")


def _last_json(text: str) -> dict[str, object] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None
