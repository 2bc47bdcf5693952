"""install: Python and Jupyter under /opt, the requested packages, data from Blob, repositories."""

from __future__ import annotations

from functools import partial
from typing import Any

from shared.artifacts import put_json
from shared.azure.blob_sas import read_only_container_url
from shared.data_access import data_problems
from shared.errors import PermanentError
from shared.manifest.reproduce import reproduced_blobs, reproduced_lock
from shared.remote import render
from shared.remote.reports import (
    BadGuestReport,
    DataManifest,
    InstallReport,
    parse_guest_json,
)
from shared.ssh.jobs import read_job_file
from shared.ssh.runner import SshRunner
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.guest_jobs import GuestJob, drive_jobs
from shared.steps.vm_access import open_guest

INSTALL_TIMEOUT_S = 3600
DATA_TIMEOUT_S = 3600
CLONE_TIMEOUT_S = 900


async def install_environment(ctx: StepContext) -> Outcome:
    """The Python install, each data pull and each clone as separate guest jobs (they touch
    different folders), `install_parallel` at once (a setting, 4 by default); done when all
    have succeeded."""
    request = ctx.request
    async with open_guest(ctx) as runner:
        jobs = install_jobs(ctx)
        result = await drive_jobs(
            runner, ctx.build, jobs, ctx.settings.install_parallel, ctx.cancel_requested
        )
        if isinstance(result, Poll):
            return result
        build = result
        reused = (build.outputs.get("start") or {}).get("image_id")
        python = {"reused_from": reused} if reused else await _install_report(runner)
        reports: dict[str, Any] = {"python": python}
        for index in range(len(request.data or [])):
            reports[f"data-{index}"] = await _data_summary(ctx, runner, f"pull-data-{index}")
    return Done(
        build.with_outputs(install=reports),
        "Python, Jupyter, packages, data and repositories are in place",
    )


def install_jobs(ctx: StepContext) -> list[GuestJob]:
    """The install stage's guest jobs, each named for what it does (its log folder too)."""
    request = ctx.request
    user = request.vm.admin_username
    python = request.python
    reused = (ctx.build.outputs.get("start") or {}).get("image_id")
    jobs = (
        []
        if reused
        else [
            GuestJob(
                "install-python",
                lambda: render.install_python(
                    list(python.packages or []),
                    installer=python.installer,
                    python_version=python.version,
                    requirements=python.requirements_txt,
                    environment_yml=python.environment_yml,
                    owner=user,
                    **reproduced_lock(ctx),
                ),
                INSTALL_TIMEOUT_S,
                "installing Python and packages",
            )
        ]
    )
    for index, source in enumerate(request.data or []):

        def pull(source: Any = source, index: int = index) -> render.ScriptRun:
            # The SAS is made only when the job starts, and travels in a 0600 file.
            # The API refused containers outside the allow-list; the settings may have
            # changed since, so ask again right before signing.
            refused = data_problems(request, ctx.settings)
            connection = ctx.settings.data_storage_connection
            if refused or connection is None:
                reasons = "; ".join(f"{p.field}: {p.message}" for p in refused)
                raise PermanentError(reasons or "no data storage account is configured")
            url = read_only_container_url(connection, source.container, ctx.azure.credential)
            blobs = reproduced_blobs(ctx, index) or source.blobs
            return render.pull_data(
                url, source.destination, blobs=blobs, prefix=source.prefix, owner=user
            )

        jobs.append(
            GuestJob(
                f"pull-data-{index}",
                pull,
                DATA_TIMEOUT_S,
                f"pulling data from container {source.container}",
            )
        )
    for index, repo in enumerate(request.repositories or []):
        jobs.append(
            GuestJob(
                f"clone-{index}",
                partial(render.clone_repo, repo.url, repo.ref, repo.destination, user),
                CLONE_TIMEOUT_S,
                f"cloning {repo.url} at {repo.ref}",
            )
        )
    return jobs


async def _guest_file(runner: SshRunner, job: str, name: str) -> str | None:
    try:
        return await read_job_file(runner, job, name)
    except PermanentError:
        return None


async def _install_report(runner: SshRunner) -> dict[str, Any] | None:
    text = await _guest_file(runner, "install-python", "report.json")
    if text is None:
        return None
    try:
        return parse_guest_json(InstallReport, text, "install report").model_dump()
    except BadGuestReport as exc:
        raise PermanentError(f"install-python: {exc}") from None


async def _data_summary(ctx: StepContext, runner: SshRunner, job: str) -> dict[str, Any] | None:
    """What one data pull wrote, checked; the full file list (thousands of blobs would not fit
    in the build record) goes to Blob storage and the record keeps its digest."""
    text = await _guest_file(runner, job, "manifest.json")
    if text is None:
        return None
    try:
        manifest = parse_guest_json(DataManifest, text, "data manifest")
    except BadGuestReport as exc:
        raise PermanentError(f"{job}: {exc}") from None
    stored = put_json(ctx.settings, ctx.azure.credential, "data-manifests", manifest.model_dump())
    return {
        "destination": manifest.destination,
        "files": len(manifest.files),
        "total_bytes": manifest.total_bytes,
        "manifest": stored.as_dict(),
    }
