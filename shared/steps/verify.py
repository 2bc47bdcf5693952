"""verify: Jupyter answers on the VM's localhost through an SSH tunnel, and the notebooks run."""

from __future__ import annotations

import posixpath
from functools import partial
from typing import Any

from shared import invocation_time, telemetry
from shared.errors import PermanentError
from shared.manifest.collect import record_manifest
from shared.remote import render
from shared.remote.jupyter import check_jupyter
from shared.remote.reports import BadGuestReport, notebook_entries, parse_notebook_report
from shared.ssh.jobs import read_job_file
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import drive_job
from shared.steps.vm_access import open_guest

JUPYTER_PORT = 8889  # the port of the seed recipe's tunnel (ssh -N -L 7005:localhost:8889)
# JupyterLab imports its extensions first: seconds on an idle 2-vCPU VM, over a minute on a
# loaded host (seen in chaos runs at load average 20 and in e2e runs at 38); Jupyter exiting is
# seen within 2 s. The wait starts only when the invocation's hold on its hop has room for all
# of it (shared/invocation_time.py), else in the next invocation.
JUPYTER_WAIT_S = 120
OPT = "/opt"


async def verify_jupyter(ctx: StepContext) -> Outcome:
    async with open_guest(ctx) as runner:
        result = await verify_guest(ctx, runner, ctx.build)
        if isinstance(result, Poll):
            return result
        # What the verified guest holds, before capture tags the image with it.
        result = await record_manifest(ctx, runner, result)
    report = result.outputs.get("verification", {})
    count = len(report.get("notebooks", []))
    return Done(result, f"Jupyter answered with its token and {count} notebook(s) ran cleanly")


def notebook_groups(ctx: StepContext) -> dict[str, list[str]]:
    """Patterns grouped by the folder they are matched in (see NotebookCheck.run)."""
    request = ctx.request
    repos = request.repositories or []
    groups: dict[str, list[str]] = {}
    for pattern in request.notebooks.run:
        if pattern.startswith("/"):
            mount = request.data_disk.mount_point
            root = mount if pattern.startswith(mount.rstrip("/") + "/") else OPT
            relative = posixpath.relpath(pattern, root)
        else:
            if not repos:
                raise PermanentError(f"notebook pattern {pattern!r} is relative but no repository")
            root, relative = repos[0].destination, pattern
        groups.setdefault(root, []).append(relative)
    return groups


async def verify_guest(
    ctx: StepContext, runner: SshRunner, build: Build, report_key: str = "verification"
) -> Build | Poll:
    """Jupyter check, then the notebooks; the report lands in the build's outputs[report_key]."""
    stage = build.stage
    if not build.marker(stage, "jupyter_ok"):
        if not invocation_time.room_for(JUPYTER_WAIT_S):
            return Poll(build, 0, "Jupyter is checked in the next invocation")
        # Jupyter starting on the guest is work the build waits for, timed as such.
        with telemetry.span("ssh jupyter start and answer"):
            await check_jupyter(runner, f"jupyter-{stage}", JUPYTER_PORT, wait_s=JUPYTER_WAIT_S)
        build = build.with_progress(stage, jupyter_ok=True).with_event(
            "Jupyter answered through the SSH tunnel with its token", stage
        )
    timeout_s = ctx.request.notebooks.timeout_minutes * 60
    kernel = ctx.request.notebooks.kernel or "python3"
    results: list[dict[str, Any]] = []
    for index, (root, patterns) in enumerate(notebook_groups(ctx).items()):
        job = f"notebooks-{stage}-{index}"
        total_s = timeout_s * 50 + 300
        try:
            result = await drive_job(
                runner,
                build,
                job,
                partial(render.run_notebooks, [root], patterns, timeout_s, kernel=kernel),
                total_s,
                "running the notebooks",
                ctx.cancel_requested,
            )
        except PermanentError as exc:
            entries = await _report(runner, job)
            if entries is None:
                raise
            raise PermanentError(_failure_sentence(entries)) from exc
        if isinstance(result, Poll):
            return result
        build = result
        results.extend(await _report(runner, job) or [])
    return build.with_outputs(**{report_key: {"jupyter": "answered", "notebooks": results}})


async def _report(runner: SshRunner, job: str) -> list[dict[str, Any]] | None:
    """The notebooks' results the job wrote; None when it wrote none. A report that is not
    what run_notebooks.py writes (a guest can write anything there) is a permanent error."""
    try:
        text = await read_job_file(runner, job, "report.json")
    except PermanentError:
        return None
    try:
        return notebook_entries(parse_notebook_report(text))
    except BadGuestReport as exc:
        raise PermanentError(f"the VM's notebook report cannot be used: {exc}") from None


def _failure_sentence(entries: list[dict[str, Any]]) -> str:
    failed = [nb for nb in entries if nb.get("status") != "ok"]
    if not failed:
        return "the notebook run failed without saying which notebook"
    parts = []
    for nb in failed:
        where = f" at cell {nb['cell']}" if nb.get("cell") is not None else ""
        error = f"{nb.get('ename') or nb.get('status')}: {nb.get('evalue') or ''}".strip(": ")
        parts.append(f"notebook {nb.get('name')} failed{where}: {error}")
    return "; ".join(parts)
