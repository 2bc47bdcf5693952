"""Copy a VM's guest job logs to Blob storage before the VM goes (see shared/build_logs.py).

The jobs are found by listing the guest's job folder, not from a fixed list: whatever jobs the
install, data pulls, clones and notebook runs started are there. What the guest names is
hostile input: only names that fit the job-name rule are copied, each file bounded in size.
"""

from __future__ import annotations

import logging

from shared import build_logs
from shared.azure import vms
from shared.azure.naming import BuildNames
from shared.errors import PermanentError, StepError
from shared.ssh.jobs import JOBS_ROOT, job_dir
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner
from shared.state.record import Build
from shared.steps.base import StepContext
from shared.steps.vm_access import open_guest

logger = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 16 * 1024 * 1024  # a log longer than this keeps its last 16 MiB
MAX_ENTRIES = 200
EXECUTED_DIR = "executed"  # where run_notebooks.py leaves the executed notebooks of its job
LOGS_OUTPUT = "logs"  # build.outputs["logs"][role]: the entries copied from that VM


async def _guest_files(runner: SshRunner) -> list[tuple[str, str]]:
    """(job, file relative to the job folder) of every log and executed notebook."""
    listing = await runner.run(
        RemoteCommand(
            (
                "find", JOBS_ROOT, "-mindepth", "2", "-maxdepth", "3", "-type", "f",
                "(", "-path", f"{JOBS_ROOT}/*/log", "-o",
                "-path", f"{JOBS_ROOT}/*/{EXECUTED_DIR}/*.ipynb", ")",
            ),
            60,
            sudo=True,
        )
    )  # fmt: skip
    found = []
    for line in listing.stdout.splitlines()[: MAX_ENTRIES * 2]:
        relative = line.removeprefix(JOBS_ROOT + "/")
        job, _, rest = relative.partition("/")
        try:
            job_dir(job)
        except ValueError:
            continue
        if rest == "log" or _executed_notebook(rest):
            found.append((job, rest))
    return sorted(found)[:MAX_ENTRIES]


def _executed_notebook(rest: str) -> bool:
    name = rest.removeprefix(EXECUTED_DIR + "/")
    return name != rest and "/" not in name and name.endswith(".ipynb")


async def copy_guest_logs(ctx: StepContext, runner: SshRunner, role: str, build: Build) -> Build:
    """Copy every job log and executed notebook of the VM `role` to Blob storage; `build`
    comes back with the entries recorded in outputs["logs"][role]."""
    entries = []
    for job, rest in await _guest_files(runner):
        path = f"{job_dir(job)}/{rest}"
        read = await runner.run(
            RemoteCommand(("tail", "-c", str(MAX_ENTRY_BYTES), "--", path), 120, sudo=True)
        )
        if read.exit_status != 0:
            continue  # removed meanwhile
        if rest == "log":
            entry = build_logs.job_log_entry(role, job)
        else:
            entry = build_logs.notebook_entry(role, job, rest.removeprefix(EXECUTED_DIR + "/"))
        if not build_logs.valid_entry(entry):
            continue
        build_logs.store_entry(ctx.settings, ctx.azure.credential, build.id, entry, read.stdout)
        entries.append(entry)
    logs = {**build.outputs.get(LOGS_OUTPUT, {}), role: entries}
    return build.with_outputs(**{LOGS_OUTPUT: logs})


def logs_copied(build: Build, role: str) -> bool:
    return role in build.outputs.get(LOGS_OUTPUT, {})


async def copy_logs_before_delete(ctx: StepContext, role: str) -> Build:
    """Cleanup's hook: copy the logs of VM `role` if no earlier step did and it still answers.
    Never raises: a VM that cannot be reached (killed, never booted) leaves a note instead."""
    build = ctx.build
    if logs_copied(build, role) or not build.marker(
        "provision" if role == "build" else "relaunch", f"{role}_address"
    ):
        return build
    try:
        if not vms.vm_state(ctx.azure, BuildNames(build.id).vm(role).vm).running:
            raise PermanentError("the VM is not running")
        async with open_guest(ctx, role) as runner:
            return await copy_guest_logs(ctx, runner, role, build)
    except Exception as exc:  # SSH, a stopped VM or storage trouble: cleanup must go on
        reason = str(exc) if isinstance(exc, StepError) else repr(exc)
        logger.warning("build %s: logs of the %s VM were not copied: %s", build.id, role, reason)
        logs = {**build.outputs.get(LOGS_OUTPUT, {}), role: []}
        return build.with_outputs(**{LOGS_OUTPUT: logs}).with_event(
            f"logs of the {role} VM could not be copied: {reason}"
        )
