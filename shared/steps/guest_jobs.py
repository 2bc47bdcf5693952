"""Long guest work as detached jobs, several at once: start, then wait on the guest for the
next one to end (a bounded long wait over the open SSH connection), start the next, and hand
back to the queue when one invocation has waited long enough."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared import invocation_time, telemetry
from shared.errors import PermanentError
from shared.remote import render
from shared.remote.render import ScriptRun
from shared.ssh.jobs import poll_job, stop_job, wait_for_jobs
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import Poll

MAX_PARALLEL = 4
# One guest-side wait: far under the function timeout (10 min in host.json), long enough that
# a job of minutes costs a handful of round trips instead of one poll every few seconds, short
# enough that a cancel is seen soon (it is asked for between two waits).
WAIT_S = 10
# What one invocation spends waiting before it hands back to the queue (re-enqueued at once).
INVOCATION_WAIT_S = 50
# After a failure: how long the other jobs get to stop (their `timeout -k 10` kills at 10 s).
STOP_WAIT_S = 20


@dataclass(frozen=True)
class GuestJob:
    """One detached job: `make_run` is called only when it starts (it may sign a SAS)."""

    name: str
    make_run: Callable[[], ScriptRun]
    timeout_s: int
    what: str


def _marker(job: GuestJob) -> str:
    return f"job:{job.name}"


async def drive_jobs(
    runner: SshRunner,
    build: Build,
    jobs: Sequence[GuestJob],
    parallel: int = MAX_PARALLEL,
    cancelled: Callable[[], bool] = lambda: False,
) -> Build | Poll:
    """Run `jobs` on the guest, at most `parallel` at once; the build with every job marked
    done once all succeeded, or a Poll while some still run (also as soon as `cancelled()`
    says so between two waits: the pipeline then cancels, and cleanup deletes the VM).

    The first job seen failing is a permanent error naming it, with the tail of its log; the
    others are stopped first and waited for, so nothing of this stage keeps running.
    """
    stage = build.stage
    deadline = time.monotonic() + invocation_time.bounded(INVOCATION_WAIT_S)
    states_seen = False
    while True:
        running = [j for j in jobs if build.marker(stage, _marker(j)) == "started"]
        pending = [j for j in jobs if not build.marker(stage, _marker(j))]
        for job in pending[: max(0, parallel - len(running))]:
            try:
                await render.start(runner, job.name, job.make_run(), job.timeout_s)
            except PermanentError:
                await _stop(runner, running)  # a job that cannot start stops its siblings
                raise
            build = build.with_progress(stage, **{_marker(job): "started"})
            running.append(job)
        if not running:
            return build
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (states_seen and cancelled()):
            return Poll(build, 0, f"{_whats(running)}: running")
        states_seen = True
        states = await wait_for_jobs(
            runner, [j.name for j in running], min(WAIT_S, math.ceil(remaining))
        )
        noticed = time.time()
        for job in running:
            state = states[job.name]
            if not state.exists:
                # Marked started but never launched (a crash between the two): start it again.
                build = build.with_progress(stage, **{_marker(job): None})
            elif state.finished and not state.succeeded:
                await _stop(runner, [j for j in running if j is not job])
                log = (await poll_job(runner, job.name)).log_tail
                status = (
                    "was lost" if state.exit_status is None else f"exited with {state.exit_status}"
                )
                raise PermanentError(f"{job.what} (job {job.name}) {status}: {last_lines(log)}")
            elif state.finished:
                telemetry.record_interval(
                    f"job {job.name}", state.started_at, state.ended_at, noticed=noticed
                )
                build = build.with_progress(stage, **{_marker(job): "done"})


async def drive_job(
    runner: SshRunner,
    build: Build,
    job: str,
    make_run: Callable[[], ScriptRun],
    timeout_s: int,
    what: str,
    cancelled: Callable[[], bool] = lambda: False,
) -> Build | Poll:
    """`drive_jobs` for one job."""
    job_list = [GuestJob(job, make_run, timeout_s, what)]
    return await drive_jobs(runner, build, job_list, cancelled=cancelled)


async def _stop(runner: SshRunner, jobs: Sequence[GuestJob]) -> None:
    """Stop `jobs` and wait until each has ended (or the stop wait is over)."""
    names = [j.name for j in jobs]
    for name in names:
        await stop_job(runner, name)
    deadline = time.monotonic() + STOP_WAIT_S
    while names and time.monotonic() < deadline:
        states = await wait_for_jobs(runner, names, math.ceil(deadline - time.monotonic()))
        names = [n for n in names if states[n].exists and not states[n].finished]


def _whats(jobs: Sequence[GuestJob]) -> str:
    return "; ".join(j.what for j in jobs)


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
