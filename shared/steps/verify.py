"""verify: Jupyter answers on the VM's localhost through an SSH tunnel, and the notebooks run."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from typing import Any

from shared.errors import PermanentError
from shared.remote import load_script
from shared.ssh.forward import forward_local_port
from shared.ssh.jobs import poll_job, read_job_file, start_job, stop_job
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import drive_job
from shared.steps.vm_access import open_guest

JUPYTER_PORT = 8889  # the port of the seed recipe's tunnel (ssh -N -L 7005:localhost:8889)
JUPYTER_LIFETIME_S = 1800
ENV_PYTHON = "/opt/labimage/env/bin/python"
JUPYTER_WAIT_POLLS = 30


async def verify_jupyter(ctx: StepContext) -> Outcome:
    async with open_guest(ctx) as runner:
        result = await verify_guest(ctx, runner, ctx.build)
    if isinstance(result, Poll):
        return result
    report = result.outputs.get("verification", {})
    count = len(report.get("notebooks", []))
    return Done(result, f"Jupyter answered with its token and {count} notebook(s) ran cleanly")


async def verify_guest(ctx: StepContext, runner: SshRunner, build: Build) -> Build | Poll:
    """Jupyter check, then the notebooks; the report lands in the build's outputs."""
    stage = build.stage
    if not build.marker(stage, "jupyter_ok"):
        result = await _check_jupyter(runner, build)
        if isinstance(result, Poll):
            return result
        build = result
    notebooks = ctx.request.notebooks
    params = {
        "patterns": list(notebooks.run),
        "roots": [repo.destination for repo in ctx.request.repositories or []],
        "timeout_s": notebooks.timeout_minutes * 60,
    }
    total_s = params["timeout_s"] * 50 + 300
    try:
        result = await drive_job(
            runner,
            build,
            "notebooks",
            "run_notebooks.py",
            ["params.json"],
            total_s,
            files={"params.json": json.dumps(params).encode()},
            interpreter=[ENV_PYTHON],
            what="running the notebooks",
        )
    except PermanentError as exc:
        report = await _report(runner)
        if report is None:
            raise
        raise PermanentError(_failure_sentence(report)) from exc
    if isinstance(result, Poll):
        return result
    report = await _report(runner) or {"notebooks": []}
    return result.with_outputs(verification={**report, "jupyter": "answered"})


async def _check_jupyter(runner: SshRunner, build: Build) -> Build | Poll:
    """Start Jupyter on the VM's localhost with a fresh token and reach it through a tunnel."""
    stage = build.stage
    if not build.marker(stage, "job:jupyter"):
        token_file = {"token": secrets.token_hex(24).encode()}
        await start_job(
            runner,
            "jupyter",
            load_script("start_jupyter.sh"),
            ["token", str(JUPYTER_PORT)],
            JUPYTER_LIFETIME_S,
            files=token_file,
        )
        return Poll(build.with_progress(stage, **{"job:jupyter": "started"}), 2, "starting Jupyter")
    state = await poll_job(runner, "jupyter")
    if state.finished:
        raise PermanentError(f"Jupyter exited ({state.exit_status}): {state.log_tail[-1500:]}")
    token = (await read_job_file(runner, "jupyter", "token")).strip()
    async with forward_local_port(runner, JUPYTER_PORT) as local_port:
        status = await asyncio.to_thread(_jupyter_status, local_port, token)
    if status is None:
        polls = int(build.marker(stage, "jupyter_polls", 0)) + 1
        if polls > JUPYTER_WAIT_POLLS:
            raise PermanentError(f"Jupyter did not answer on the VM's localhost:{JUPYTER_PORT}")
        return Poll(build.with_progress(stage, jupyter_polls=polls), 2, "waiting for Jupyter")
    await stop_job(runner, "jupyter")
    return build.with_progress(stage, jupyter_ok=True)


def _jupyter_status(port: int, token: str) -> dict[str, Any] | None:
    """GET /api/status with the token (in a header, never in a URL that could be logged)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


async def _report(runner: SshRunner) -> dict[str, Any] | None:
    try:
        value = json.loads(await read_job_file(runner, "notebooks", "report.json"))
    except (ValueError, PermanentError):
        return None
    return value if isinstance(value, dict) else None


def _failure_sentence(report: dict[str, Any]) -> str:
    failed = [nb for nb in report.get("notebooks", []) if nb.get("status") != "ok"]
    if not failed:
        return "the notebook run failed without a report of which notebook"
    parts = []
    for nb in failed:
        where = f" at cell {nb['cell']}" if nb.get("cell") is not None else ""
        error = f"{nb.get('ename') or nb.get('status')}: {nb.get('evalue') or ''}".strip(": ")
        parts.append(f"notebook {nb.get('name')} failed{where}: {error}")
    return "; ".join(parts)
