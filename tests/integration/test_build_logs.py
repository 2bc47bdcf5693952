"""Build logs: a guest job's log and executed notebook copied over real SSH to Azurite, scrubbed,
then listed and read through the API as the build's owner (and refused to anyone else)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_server import SshdServer, running_sshd, unavailable_reason

from shared.api import build_logs as logs_api
from shared.api.caller import Caller, signed_in_caller
from shared.runtime import Runtime
from shared.ssh.jobs import JOBS_ROOT, poll_job, start_job
from shared.ssh.runner import connect
from shared.state.record import Build
from shared.steps.base import StepContext
from shared.steps.copy_logs import copy_guest_logs
from tests.principals import ADMIN, ALICE, BOB, object_id_of

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

SAS_URL = "https://acct.blob.core.windows.net/data?sv=2024-11-04&sr=c&sig=TOPSECRETSIG123"
# The job prints what a data pull could print, a SAS URL included, and leaves an executed
# notebook whose failing cell's output a user wants to open.
JOB_SCRIPT = f"""#!/bin/bash
echo "collecting numpy"
echo "pulling from {SAS_URL}" >&2
mkdir -p executed
cat > executed/analysis__plot.ipynb <<'EOF'
{{"nbformat": 4, "nbformat_minor": 5, "metadata": {{}}, "cells": [{{"cell_type": "code",
"metadata": {{}}, "source": "1/0", "execution_count": 1, "outputs": [{{"output_type": "error",
"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []}}]}}]}}
EOF
echo "ERROR: No matching distribution found for nosuchpackage" >&2
exit 1
"""


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshdServer]:
    with running_sshd() as server:
        yield server


@pytest.fixture
def job_name() -> Iterator[str]:
    name = f"test-logs-{uuid.uuid4().hex[:10]}"
    yield name
    shutil.rmtree(Path(JOBS_ROOT) / name, ignore_errors=True)
    for leftover in (Path(JOBS_ROOT), Path(JOBS_ROOT).parent):
        with contextlib.suppress(OSError):
            leftover.rmdir()  # only when empty: others' jobs stay


def caller(headers: dict[str, str]) -> Caller:
    found = signed_in_caller(headers, True)
    assert found is not None
    return found


async def test_a_failed_jobs_log_and_notebook_are_copied_scrubbed_and_read_by_the_owner_only(
    sshd: SshdServer, job_name: str, runtime: Runtime
) -> None:
    build = Build(
        id="blog" + uuid.uuid4().hex[:6],
        request={"name": "logs"},
        owner="alice@example.org",
        owner_id=object_id_of("alice@example.org"),
    )
    runtime.store.create(build)
    ctx = StepContext(runtime.settings, build, runtime.azure, keys=None)
    async with connect(sshd.target()) as runner:
        assert await start_job(runner, job_name, JOB_SCRIPT, (), 60)
        for _ in range(100):
            if (await poll_job(runner, job_name)).finished:
                break
            await asyncio.sleep(0.1)
        copied = await copy_guest_logs(ctx, runner, "build", build)

    log_entry = f"build.{job_name}.log"
    notebook_entry = f"build.{job_name}.analysis__plot.ipynb"
    assert {log_entry, notebook_entry} <= set(copied.outputs["logs"]["build"])

    listed = logs_api.list_logs(runtime, build.id, caller(ALICE))
    assert listed.status == 200
    names = {e["name"]: e for e in listed.body["logs"]}
    assert names[log_entry]["content_type"] == "text/plain"
    assert names[notebook_entry]["content_type"] == "application/x-ipynb+json"

    # A job's log by its short name (without .log), as `labimage logs <id> <job>` asks for it.
    text = logs_api.get_log(runtime, build.id, f"build.{job_name}", caller(ALICE))
    assert text.status == 200 and text.content_type == "text/plain"
    content = text.body.decode()
    assert "No matching distribution found for nosuchpackage" in content
    assert "sig=REDACTED" in content and "TOPSECRETSIG123" not in content

    notebook = logs_api.get_log(runtime, build.id, notebook_entry, caller(ADMIN))
    cell = json.loads(notebook.body)["cells"][0]
    assert cell["outputs"][0]["ename"] == "ZeroDivisionError"

    for refused in (
        logs_api.list_logs(runtime, build.id, caller(BOB)),
        logs_api.get_log(runtime, build.id, log_entry, caller(BOB)),
    ):
        assert refused.status == 404  # as for another's build: its id does not leak
    missing = logs_api.get_log(runtime, build.id, "build.nosuchjob", caller(ALICE))
    assert missing.status == 404
    assert missing.body["problems"][0]["field"] == "job"
