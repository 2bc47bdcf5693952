"""Several guest jobs at once (install's overlap) against a real OpenSSH server: bounded
parallelism, the long wait noticing an end at once, and a failure that names its job and
leaves nothing running."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_server import SshdServer, running_sshd, unavailable_reason

from shared.errors import PermanentError
from shared.remote.render import ScriptRun
from shared.ssh.jobs import JOBS_ROOT, wait_for_jobs
from shared.ssh.runner import SshRunner, connect
from shared.state.record import Build
from shared.steps import guest_jobs
from shared.steps.base import Poll
from shared.steps.guest_jobs import GuestJob, drive_jobs

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@dataclass(frozen=True)
class InlineRun(ScriptRun):
    """A job whose script is given here rather than read from shared/remote/scripts."""

    body: str = ""

    @property
    def text(self) -> str:
        return self.body


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshdServer]:
    with running_sshd() as server:
        yield server


@pytest.fixture
async def runner(sshd: SshdServer) -> AsyncIterator[SshRunner]:
    async with connect(sshd.target()) as r:
        yield r


@pytest.fixture
def tag() -> Iterator[str]:
    """A unique prefix for this test's job names; their folders are removed afterwards."""
    prefix = f"grp-{uuid.uuid4().hex[:10]}"
    yield prefix
    for leftover in Path(JOBS_ROOT).glob(f"{prefix}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for folder in (Path(JOBS_ROOT), Path(JOBS_ROOT).parent):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: never remove what others put there


def job(name: str, body: str, what: str, timeout_s: int = 300) -> GuestJob:
    return GuestJob(name, lambda: InlineRun("inline.sh", body=body), timeout_s, what)


def processes_with(text: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


async def test_jobs_run_together_and_the_stage_ends_when_all_have(
    runner: SshRunner, tag: str
) -> None:
    jobs = [job(f"{tag}-{i}", "#!/bin/sh\nsleep 2\n", f"napping {i}") for i in range(3)]
    started = time.monotonic()
    result = await drive_jobs(runner, Build(id="bgroup0001", request={}), jobs)
    took = time.monotonic() - started
    assert not isinstance(result, Poll)
    assert all(result.marker(result.stage, f"job:{j.name}") == "done" for j in jobs)
    # Three 2 s jobs one after another would take over 6 s; together, and noticed at once:
    assert took < 5.5, took


async def test_no_more_than_the_bound_run_at_once(runner: SshRunner, tag: str) -> None:
    count_file = f"/tmp/{tag}-running"
    body = (
        "#!/bin/sh\n"
        f"echo x >> {count_file}; wc -l < {count_file} >> {count_file}.seen\n"
        f"sleep 1; sed -i '$d' {count_file}\n"
    )
    jobs = [job(f"{tag}-{i}", body, f"counting {i}") for i in range(5)]
    try:
        result = await drive_jobs(runner, Build(id="bgroup0002", request={}), jobs, parallel=2)
        assert not isinstance(result, Poll)
        seen = [int(n) for n in Path(f"{count_file}.seen").read_text().split()]
        assert len(seen) == 5 and max(seen) <= 2
    finally:
        for path in (count_file, f"{count_file}.seen"):
            with contextlib.suppress(OSError):
                Path(path).unlink()


async def test_a_failing_job_names_itself_and_stops_the_others(runner: SshRunner, tag: str) -> None:
    # The slow jobs start children of their own (a pipeline in the background), as uv and
    # git do; a sleep of an odd length tells their processes from anyone else's.
    nap = f"300.{uuid.uuid4().int % 10**6:06d}"
    slow = f"#!/bin/bash\nsleep {nap} | cat &\nsleep {nap}\nwait\n"
    jobs = [
        job(f"{tag}-slow-a", slow, "pulling data from container a"),
        job(f"{tag}-broken", "#!/bin/sh\necho 'no such ref v9' >&2\nsleep 1\nexit 3\n", "cloning"),
        job(f"{tag}-slow-b", slow, "pulling data from container b"),
    ]
    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        await drive_jobs(runner, Build(id="bgroup0003", request={}), jobs)
    message = str(caught.value)
    assert f"job {tag}-broken" in message and "exited with 3" in message
    assert "no such ref v9" in message
    assert "container a" not in message and "container b" not in message
    assert time.monotonic() - started < 30
    # Nothing of the stage is left on the guest: both slow jobs ended, with their children.
    states = await wait_for_jobs(runner, [f"{tag}-slow-a", f"{tag}-slow-b"], 0)
    assert all(s.finished and s.exit_status != 0 for s in states.values()), states
    try:
        assert processes_with(f"sleep {nap}") == []
    finally:
        subprocess.run(["pkill", "-KILL", "-f", f"sleep {nap}"], check=False)


async def test_a_long_job_hands_back_to_the_queue_after_the_invocation_wait(
    runner: SshRunner, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest_jobs, "INVOCATION_WAIT_S", 2)
    jobs = [job(f"{tag}-long", "#!/bin/sh\nsleep 6\n", "a long job")]
    build = Build(id="bgroup0004", request={})
    first = await drive_jobs(runner, build, jobs)
    assert isinstance(first, Poll) and first.after_s == 0
    assert "a long job: running" in first.note
    invocations = 1
    result: Build | Poll = first
    while isinstance(result, Poll):
        result = await drive_jobs(runner, result.build, jobs)
        invocations += 1
    # A fixed 2 s poll would have needed three or four invocations and noticed the end late.
    assert invocations <= 4
    assert result.marker(result.stage, f"job:{tag}-long") == "done"


async def test_a_cancel_is_seen_between_two_waits(runner: SshRunner, tag: str) -> None:
    jobs = [job(f"{tag}-long", "#!/bin/sh\nsleep 60\n", "a long job", timeout_s=90)]
    asked = []

    def cancelled() -> bool:
        asked.append(time.monotonic())
        return True

    started = time.monotonic()
    result = await drive_jobs(runner, Build(id="bgroup0005", request={}), jobs, cancelled=cancelled)
    # Handed back after one guest-side wait, not after the invocation's whole wait.
    assert isinstance(result, Poll) and result.after_s == 0
    assert asked and time.monotonic() - started < guest_jobs.WAIT_S + 5
    await guest_jobs._stop(runner, jobs)  # the test's own tidying: cleanup deletes a real VM
