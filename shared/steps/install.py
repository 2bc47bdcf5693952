"""install: Python and Jupyter under /opt, the requested packages, data from Blob, repositories."""

from __future__ import annotations

import json
from typing import Any

from shared.azure.blob_sas import read_only_container_url
from shared.ssh.jobs import read_job_file
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import drive_job
from shared.steps.mount import _last_json
from shared.steps.vm_access import open_guest

INSTALL_TIMEOUT_S = 3600
DATA_TIMEOUT_S = 3600
CLONE_TIMEOUT_S = 900


def python_params(ctx: StepContext) -> dict[str, Any]:
    python = ctx.request.python
    return {
        "installer": python.installer,
        "python_version": python.version,
        "packages": list(python.packages or []),
        "requirements_txt": python.requirements_txt,
        "environment_yml": python.environment_yml,
    }


async def install_environment(ctx: StepContext) -> Outcome:
    request = ctx.request
    build = ctx.build
    async with open_guest(ctx) as runner:
        params = json.dumps(python_params(ctx)).encode()
        result = await drive_job(
            runner,
            build,
            "install-python",
            "install_python.sh",
            ["params.json"],
            INSTALL_TIMEOUT_S,
            files={"params.json": params},
            what="installing Python and packages",
        )
        if isinstance(result, Poll):
            return result
        build = result
        for index, source in enumerate(request.data or []):
            job = f"pull-data-{index}"
            files = None
            if not build.marker(build.stage, f"job:{job}"):
                files = {"params.json": json.dumps(_data_params(ctx, source)).encode()}
            result = await drive_job(
                runner,
                build,
                job,
                "pull_data.py",
                ["params.json"],
                DATA_TIMEOUT_S,
                files=files,
                interpreter=["python3"],
                what=f"pulling data from {source.container}",
            )
            if isinstance(result, Poll):
                return result
            build = result
        for index, repo in enumerate(request.repositories or []):
            result = await drive_job(
                runner,
                build,
                f"clone-{index}",
                "clone_repo.sh",
                [repo.url, repo.ref, repo.destination],
                CLONE_TIMEOUT_S,
                what=f"cloning {repo.url} at {repo.ref}",
            )
            if isinstance(result, Poll):
                return result
            build = result
        reports = {
            "python": _last_json(await read_job_file(runner, "install-python", "log")),
        }
    build = build.with_outputs(install=reports)
    return Done(build, "Python, Jupyter, packages, data and repositories are in place")


def _data_params(ctx: StepContext, source: Any) -> dict[str, Any]:
    """Parameters for pull_data.py; they hold the SAS URL, so they travel only in a 0600 file."""
    url = read_only_container_url(ctx.settings.data_storage_connection, source.container)
    return {
        "container_url": url,
        "prefix": source.prefix,
        "blobs": list(source.blobs or []),
        "destination": source.destination,
        "owner": ctx.request.vm.admin_username,
    }
