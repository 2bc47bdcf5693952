"""Check that Jupyter serves on the guest: start it detached, ask /api/status through the tunnel."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from shared.errors import PermanentError, TemporaryError
from shared.remote import render
from shared.ssh.forward import forward_local_port
from shared.ssh.jobs import end_job, poll_job, stop_job
from shared.ssh.runner import SshRunner


def new_token() -> str:
    return secrets.token_hex(24)


def _get_status(local_port: int, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{local_port}/api/status", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


async def jupyter_status(local_port: int, token: str) -> dict[str, Any]:
    """GET /api/status with the token. 403 → PermanentError; not answering → TemporaryError."""
    try:
        return await asyncio.to_thread(_get_status, local_port, token)
    except urllib.error.HTTPError as exc:
        raise PermanentError(f"Jupyter answered /api/status with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TemporaryError(f"Jupyter does not answer yet: {type(exc).__name__}") from None


JUPYTER_RETRY_S = 0.25  # a starting Jupyter is asked again this soon


async def check_jupyter(
    runner: SshRunner,
    job_name: str,
    remote_port: int = 8889,
    *,
    prefix: str = render.DEFAULT_PREFIX,
    wait_s: float = 90,
) -> dict[str, Any]:
    """Start Jupyter on the guest, reach it through a port forward with a fresh token, stop it.

    Returns the /api/status document. Raises PermanentError when it never answers in `wait_s`
    or the job dies (with the log tail), so a person can see why.
    """
    token = new_token()
    # A fresh token needs a fresh job, and the port free: a Jupyter an interrupted check left
    # running would answer the new token with 403.
    await end_job(runner, job_name)
    await render.start(
        runner, job_name, render.start_jupyter(remote_port, token, prefix=prefix), 3600
    )
    try:
        async with forward_local_port(runner, remote_port) as local_port:
            deadline = asyncio.get_running_loop().time() + wait_s
            while True:
                try:
                    return await jupyter_status(local_port, token)
                except TemporaryError:
                    state = await poll_job(runner, job_name)
                    log = state.log_tail[-1500:]
                    if state.finished:
                        raise PermanentError(
                            f"Jupyter exited with status {state.exit_status}: {log}"
                        ) from None
                    if asyncio.get_running_loop().time() > deadline:
                        raise PermanentError(
                            f"Jupyter did not answer within {wait_s:.0f} s: {log}"
                        ) from None
                    await asyncio.sleep(JUPYTER_RETRY_S)
    finally:
        await stop_job(runner, job_name)
