"""Long guest work as detached jobs: start once, then poll on later invocations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.errors import PermanentError
from shared.remote import load_script
from shared.ssh.jobs import poll_job, start_job
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import Poll

JOB_POLL_S = 2.0


async def drive_job(
    runner: SshRunner,
    build: Build,
    job: str,
    script: str,
    args: Sequence[str],
    timeout_s: int,
    *,
    files: Mapping[str, bytes] | None = None,
    interpreter: Sequence[str] = (),
    what: str | None = None,
) -> Build | Poll:
    """Start `job` if it has not started, else poll it. The build comes back with the job marked
    done when it succeeded; a failed job is a permanent error naming it, with its log's tail."""
    stage = build.stage
    label = what or job
    if build.marker(stage, f"job:{job}") == "done":
        return build
    if not build.marker(stage, f"job:{job}"):
        await start_job(
            runner,
            job,
            load_script(script),
            args,
            timeout_s,
            files=files,
            interpreter=interpreter,
        )
        return Poll(
            build.with_progress(stage, **{f"job:{job}": "started"}), JOB_POLL_S, f"{label}: started"
        )
    state = await poll_job(runner, job)
    if not state.exists:
        # Marked started but never launched (a crash between the two): start it again.
        return Poll(build.with_progress(stage, **{f"job:{job}": None}), 0, f"{label}: restarting")
    if not state.finished:
        return Poll(build, JOB_POLL_S, f"{label}: running")
    if not state.succeeded:
        status = "was lost" if state.exit_status is None else f"exited with {state.exit_status}"
        raise PermanentError(f"{label} {status}: {_last_lines(state.log_tail)}")
    return build.with_progress(stage, **{f"job:{job}": "done"})


def _last_lines(text: str, count: int = 12) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "(no output)"
