"""Long guest work as detached jobs: start once, then poll on later invocations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from shared import telemetry
from shared.errors import PermanentError
from shared.remote import render
from shared.remote.render import ScriptRun
from shared.ssh.jobs import poll_job
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import Poll

JOB_POLL_S = 2.0


async def drive_job(
    runner: SshRunner,
    build: Build,
    job: str,
    make_run: Callable[[], ScriptRun],
    timeout_s: int,
    what: str,
) -> Build | Poll:
    """Start `job` if it has not started (only then is `make_run` called), else poll it.

    The build comes back with the job marked done when it succeeded; a failed job is a
    permanent error naming `what`, with the tail of the job's log.
    """
    stage = build.stage
    marker = f"job:{job}"
    if build.marker(stage, marker) == "done":
        return build
    if not build.marker(stage, marker):
        await render.start(runner, job, make_run(), timeout_s)
        return Poll(
            build.with_progress(stage, **{marker: "started"}), JOB_POLL_S, f"{what}: started"
        )
    state = await poll_job(runner, job)
    if not state.exists:
        # Marked started but never launched (a crash between the two): start it again.
        return Poll(build.with_progress(stage, **{marker: None}), 0, f"{what}: restarting")
    if not state.finished:
        return Poll(build, JOB_POLL_S, f"{what}: running")
    if not state.succeeded:
        status = "was lost" if state.exit_status is None else f"exited with {state.exit_status}"
        raise PermanentError(f"{what} {status}: {last_lines(state.log_tail)}")
    telemetry.record_interval(f"job {job}", state.started_at, state.ended_at, noticed=time.time())
    return build.with_progress(stage, **{marker: "done"})


def last_lines(text: str, count: int = 12) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "(no output)"


def last_json(text: str) -> dict[str, object] | None:
    """The last line of `text` that is a JSON object (scripts print their result that way)."""
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
