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
from shared.ssh.jobs import end_job, poll_job, stop_job, wait_for_jobs
from shared.ssh.runner import SshRunner


def new_token() -> str:
    return secrets.token_hex(24)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the HTTPError it is: the guest's Jupyter must not send the
    controller (with the token) to a URL of its choosing."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _get_status(local_port: int, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{local_port}/api/status", headers={"Authorization": f"token {token}"}
    )
    with _OPENER.open(request, timeout=10) as response:
        return dict(json.load(response))


async def jupyter_status(local_port: int, token: str) -> dict[str, Any]:
    """GET /api/status with the token. 403 or a redirect (not followed) → PermanentError;
    not answering → TemporaryError."""
    try:
        return await asyncio.to_thread(_get_status, local_port, token)
    except urllib.error.HTTPError as exc:
        raise PermanentError(f"Jupyter answered /api/status with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TemporaryError(f"Jupyter does not answer yet: {type(exc).__name__}") from None


JUPYTER_RETRY_S = 0.25  # a starting Jupyter is asked again this soon (through the tunnel)
JOB_LOOK_S = 2.0  # and its job's state is looked at this often


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
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            next_look = loop.time() + JOB_LOOK_S
            while True:
                try:
                    return await jupyter_status(local_port, token)
                except TemporaryError:
                    now = loop.time()
                    if now >= next_look or now > deadline:
                        # A look at the job is a command on the guest (sudo, a shell): every few
                        # seconds, not on each try, so it does not slow Jupyter's own start.
                        next_look = now + JOB_LOOK_S
                        state = (await wait_for_jobs(runner, [job_name], 0))[job_name]
                        if state.finished or now > deadline:
                            await _give_up(runner, job_name, state.finished, wait_s)
                    await asyncio.sleep(JUPYTER_RETRY_S)
    finally:
        await stop_job(runner, job_name)


async def _give_up(runner: SshRunner, job_name: str, exited: bool, wait_s: float) -> None:
    """Raise why Jupyter will not answer: it exited, or it did not answer in time."""
    state = await poll_job(runner, job_name)
    log = state.log_tail[-1500:]
    if exited:
        raise PermanentError(f"Jupyter exited with status {state.exit_status}: {log}")
    raise PermanentError(f"Jupyter did not answer within {wait_s:.0f} s: {log}")
