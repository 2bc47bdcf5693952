"""The SSH layer against a real OpenSSH server on 127.0.0.1 with a throwaway sudo user."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import json
import pwd
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.storage.blob import ContentSettings
from sshd_server import TEST_USER, SshdServer, running_sshd, unavailable_reason

from shared.remote import render
from shared.ssh.errors import (
    HostKeyMismatch,
    RemoteCommandError,
    RemoteOutputTooLarge,
    SshConnectionError,
)
from shared.ssh.forward import forward_local_port
from shared.ssh.jobs import (
    JOBS_ROOT,
    end_job,
    poll_job,
    read_job_file,
    run_script,
    start_job,
    stop_job,
)
from shared.ssh.keys import generate_keypair
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner, connect, open_runner
from tests.local_services import read_sas

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshdServer]:
    with running_sshd() as server:
        yield server


@pytest.fixture
async def runner(sshd: SshdServer) -> AsyncIterator[SshRunner]:
    async with connect(sshd.target()) as r:
        yield r


@pytest.fixture
def job_name() -> Iterator[str]:
    """A unique job name; its directory under the real jobs root is removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    shutil.rmtree(Path(JOBS_ROOT) / name, ignore_errors=True)
    for leftover in (Path(JOBS_ROOT), Path(JOBS_ROOT).parent):
        with contextlib.suppress(OSError):
            leftover.rmdir()  # only when empty: never remove what others put there


async def wait_finished(runner: SshRunner, name: str, limit_s: float = 30):
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        state = await poll_job(runner, name)
        if state.finished or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.3)


async def test_run_returns_output_and_exit_status(runner: SshRunner) -> None:
    result = await runner.run(RemoteCommand(("sh", "-c", "echo out; echo err >&2; exit 3"), 10))
    assert (result.stdout, result.stderr, result.exit_status) == ("out\n", "err\n", 3)


async def test_a_guest_that_floods_its_output_is_cut_off_not_buffered(
    runner: SshRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest is its owner's (sudo, its own python3): what it prints is read up to a bound,
    so a flood cannot run the controller's host out of memory."""
    from shared.ssh import runner as runner_module

    monkeypatch.setattr(runner_module, "OUTPUT_LIMIT_BYTES", 1024 * 1024)
    flood = RemoteCommand(("sh", "-c", "head -c 50000000 /dev/zero; echo done"), 30)
    with pytest.raises(RemoteOutputTooLarge, match="more than 1 MiB"):
        await runner.run(flood)
    quiet = await runner.run(RemoteCommand(("sh", "-c", "head -c 1000000 /dev/zero | wc -c"), 10))
    assert quiet.stdout.strip() == "1000000"  # the connection still serves


async def test_check_raises_with_status_and_stderr_tail(runner: SshRunner) -> None:
    with pytest.raises(RemoteCommandError) as caught:
        await runner.check(RemoteCommand(("ls", "/no/such/dir"), 10))
    assert caught.value.exit_status == 2
    assert "/no/such/dir" in caught.value.stderr_tail


async def test_sudo_runs_as_root(runner: SshRunner) -> None:
    plain = await runner.check(RemoteCommand(("id", "-un"), 10))
    root = await runner.check(RemoteCommand(("id", "-un"), 10, sudo=True))
    assert (plain.stdout.strip(), root.stdout.strip()) == (TEST_USER, "root")


async def test_hostile_arguments_arrive_as_single_arguments(
    runner: SshRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = [f"$(touch {marker})", f"; touch {marker}", f"a'b\"c\n`touch {marker}`", "*"]
    result = await runner.check(RemoteCommand(("printf", "%s\\0", *hostile), 10))
    assert result.stdout.split("\0")[:-1] == hostile
    assert not marker.exists()


async def test_remote_time_limit_stops_the_command(runner: SshRunner) -> None:
    result = await runner.run(RemoteCommand(("sleep", "100"), timeout_s=1))
    assert result.exit_status == 124


async def test_wrong_host_key_is_refused_before_any_command(sshd: SshdServer) -> None:
    impostor = generate_keypair("someone-else").public_line
    with pytest.raises(HostKeyMismatch) as caught:
        await open_runner(sshd.target(host_public_key=impostor))
    assert "host key" in str(caught.value)
    assert sshd.client_key.private_openssh.splitlines()[1] not in str(caught.value)


async def test_refused_connection_is_temporary(sshd: SshdServer) -> None:
    from sshd_server import free_port

    target = sshd.target()
    closed = type(target)(**{**target.__dict__, "port": free_port()})
    with pytest.raises(SshConnectionError):
        await open_runner(closed)


async def test_upload_moves_into_place_with_mode(runner: SshRunner, sshd: SshdServer) -> None:
    dest = sshd.home / "uploaded.txt"
    await runner.upload(b"hello\n", str(dest), mode=0o640)
    assert dest.read_bytes() == b"hello\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert not [p for p in sshd.home.iterdir() if p.name.startswith(".labimage-upload")]


async def test_upload_to_a_root_owned_place_uses_sudo(runner: SshRunner, tmp_path: Path) -> None:
    root_dir = tmp_path / "rootonly"
    root_dir.mkdir(mode=0o755)
    dest = root_dir / "conf"
    await runner.upload(b"x=1\n", str(dest), mode=0o600, root_owned=True)
    assert dest.read_bytes() == b"x=1\n"
    assert (dest.stat().st_uid, dest.stat().st_mode & 0o777) == (0, 0o600)


async def test_job_runs_detached_and_is_polled(runner: SshRunner, job_name: str) -> None:
    script = '#!/bin/bash\nset -eu\necho "arg=$1 greet=$GREETING secret=$(wc -c < params.json)"\n'
    started = await start_job(
        runner,
        job_name,
        script,
        ["two words; $(reboot)"],
        timeout_s=30,
        env={"GREETING": "hi there"},
        files={"params.json": b'{"sas": "s3cret"}'},
    )
    assert started
    state = await wait_finished(runner, job_name)
    assert state.succeeded
    assert "arg=two words; $(reboot) greet=hi there secret=17" in state.log_tail
    params = Path(JOBS_ROOT) / job_name / "params.json"
    assert params.stat().st_mode & 0o777 == 0o600
    assert await read_job_file(runner, job_name, "params.json") == '{"sas": "s3cret"}'


async def test_starting_a_job_twice_runs_it_once(runner: SshRunner, job_name: str) -> None:
    script = "#!/bin/sh\necho ran >> /proc/self/fd/1\ndate +%s%N >> runs\n"
    assert await start_job(runner, job_name, script, [], timeout_s=30)
    assert not await start_job(runner, job_name, script, [], timeout_s=30)
    await wait_finished(runner, job_name)
    assert not await start_job(runner, job_name, script, [], timeout_s=30)
    await asyncio.sleep(0.5)
    runs = (Path(JOBS_ROOT) / job_name / "runs").read_text().splitlines()
    assert len(runs) == 1


async def test_job_time_limit_is_enforced_remotely(runner: SshRunner, job_name: str) -> None:
    assert await start_job(runner, job_name, "#!/bin/sh\nsleep 100\n", [], timeout_s=2)
    state = await wait_finished(runner, job_name, limit_s=20)
    assert state.finished and state.exit_status in (124, 137)


async def test_stop_job_ends_a_running_job(runner: SshRunner, job_name: str) -> None:
    assert await start_job(runner, job_name, "#!/bin/sh\nsleep 100\n", [], timeout_s=300)
    await asyncio.sleep(0.5)
    assert not (await poll_job(runner, job_name)).finished
    await stop_job(runner, job_name)
    state = await wait_finished(runner, job_name, limit_s=20)
    assert state.finished and state.exit_status != 0


async def test_unknown_job_is_reported_missing(runner: SshRunner) -> None:
    state = await poll_job(runner, "never-started-" + uuid.uuid4().hex[:8])
    assert not state.exists and not state.finished


async def test_run_script_passes_files_and_raises_on_failure(runner: SshRunner) -> None:
    ok = await run_script(
        runner, "#!/bin/sh\ncat input.txt\nid -un\n", [], 20, files={"input.txt": b"data\n"}
    )
    assert ok.stdout == "data\nroot\n"
    with pytest.raises(RemoteCommandError) as caught:
        await run_script(runner, "#!/bin/sh\necho broken >&2\nexit 7\n", ["x"], 20, name="t.sh")
    assert caught.value.exit_status == 7 and "broken" in caught.value.stderr_tail


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello through the tunnel"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_port_forward_reaches_the_remote_localhost(runner: SshRunner) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        async with forward_local_port(runner, server.server_address[1]) as local_port:
            assert local_port != server.server_address[1]
            url = f"http://127.0.0.1:{local_port}/"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert body == b"hello through the tunnel"
    finally:
        server.shutdown()
        server.server_close()


# Guest scripts, run through the SSH layer on this host (the sshd's "guest" is the local machine).


async def test_pull_data_downloads_verifies_and_writes_a_manifest(
    runner: SshRunner, azurite_connection_string: str, tmp_path: Path
) -> None:

    from azure.storage.blob import (
        BlobServiceClient,
    )

    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.create_container(f"data{uuid.uuid4().hex[:8]}")
    payloads = {"raw/a.csv": b"x,y\n1,2\n", "raw/sub dir/b.bin": bytes(range(256)) * 10}
    for name, data in payloads.items():
        container.upload_blob(name, data)
    container.upload_blob("other/c.txt", b"not wanted")
    sas = read_sas(container)
    url = f"{container.url}?{sas}"
    dest = tmp_path / "datasets"
    result = await render.run_now(
        runner, render.pull_data(url, str(dest), prefix="raw/", owner=TEST_USER), 60
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["files"] == 2
    # The copied prefix is cut off: raw/a.csv lands at <destination>/a.csv.
    for name, data in payloads.items():
        assert (dest / name.removeprefix("raw/")).read_bytes() == data
    assert (dest / "a.csv").stat().st_uid == pwd.getpwnam(TEST_USER).pw_uid
    assert not (dest / "other").exists()
    assert sig_of(sas) not in result.stdout + result.stderr

    # A blob whose stored MD5 does not match its bytes fails the pull, without the SAS in the error.
    blob = container.get_blob_client("raw/a.csv")
    blob.set_http_headers(ContentSettings(content_md5=bytearray(hashlib.md5(b"other").digest())))
    with pytest.raises(RemoteCommandError) as caught:
        await render.run_now(runner, render.pull_data(url, str(tmp_path / "again")), 60)
    assert "MD5 mismatch" in caught.value.stderr_tail
    assert sig_of(sas) not in str(caught.value)
    container.delete_container()


def sig_of(sas: str) -> str:
    return urllib.parse.parse_qs(sas)["sig"][0]


async def test_pull_data_manifest_has_sha256(
    azurite_connection_string: str, tmp_path: Path
) -> None:

    from azure.storage.blob import (
        BlobServiceClient,
    )

    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.create_container(f"man{uuid.uuid4().hex[:8]}")
    container.upload_blob("ok.txt", b"fine")
    sas = read_sas(container)
    run = render.pull_data(f"{container.url}?{sas}", str(tmp_path / "d"), blobs=["ok.txt"])
    (tmp_path / "params.json").write_bytes(run.files["params.json"])
    script = Path(render.__file__).parent / "scripts" / "pull_data.py"
    done = subprocess.run(
        [sys.executable, str(script), "params.json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"fine").hexdigest()
    assert manifest["files"][0]["md5_verified"] is True

    # A requested name that would leave the destination is refused before any download.
    evil = render.pull_data(f"{container.url}?{sas}", str(tmp_path / "e"), blobs=["x/../evil.txt"])
    (tmp_path / "params.json").write_bytes(evil.files["params.json"])
    done = subprocess.run(
        [sys.executable, str(script), "params.json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "cannot be stored safely" in done.stderr
    assert not (tmp_path / "evil.txt").exists()
    container.delete_container()


async def test_clone_repo_checks_out_the_pinned_ref_once(runner: SshRunner, tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    (origin / "nb.ipynb").write_text("{}")
    subprocess.run([*git, "-C", str(origin), "add", "."], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "-C", str(origin), "tag", "v1"], check=True)
    first = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        [*git, "-C", str(origin), "commit", "-q", "--allow-empty", "-m", "two"], check=True
    )
    dest = tmp_path / "clone"
    run = render.clone_repo(f"file://{origin}", "v1", str(dest), owner=TEST_USER)
    out = json.loads((await render.run_now(runner, run, 60)).stdout.strip().splitlines()[-1])
    assert out == {"commit": first, "ref": "v1", "changed": True}
    again = json.loads((await render.run_now(runner, run, 60)).stdout.strip().splitlines()[-1])
    assert again["changed"] is False and again["commit"] == first
    main = json.loads(
        (await render.run_now(runner, render.clone_repo(f"file://{origin}", "main", str(dest)), 60))
        .stdout.strip()
        .splitlines()[-1]
    )
    assert main["commit"] != first and main["changed"] is True


async def test_check_mount_reports_an_unmounted_path(runner: SshRunner, tmp_path: Path) -> None:
    out = await render.run_now(runner, render.check_mount(str(tmp_path)), 30)
    report = json.loads(out.stdout)
    assert report["mounted"] is False and report["in_fstab_by_uuid"] is False


@pytest.fixture(scope="module")
def notebook_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A throwaway venv with nbclient, ipykernel and nbformat (not in the project's .venv)."""
    venv = tmp_path_factory.mktemp("nbvenv")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
             "nbclient", "ipykernel", "nbformat"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot install nbclient/ipykernel into a throwaway venv: {exc}")
    return str(venv / "bin/python")


def _notebook(path: Path, *sources: str) -> None:
    cells: list[dict[str, object]] = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in sources
    ]
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(doc))


def test_run_notebooks_reports_passes_failures_and_timeouts(
    notebook_python: str, tmp_path: Path
) -> None:
    book = tmp_path / "books"
    book.mkdir()
    _notebook(book / "good.ipynb", "x = 1 + 1", "assert x == 2")
    _notebook(book / "bad.ipynb", "a = 1", "raise ValueError('broken data')")
    _notebook(book / "slow.ipynb", "import time; time.sleep(60)")
    run = render.run_notebooks([str(book)], ["*.ipynb"], 15, python=notebook_python)
    (tmp_path / "params.json").write_bytes(run.files["params.json"])
    script = Path(render.__file__).parent / "scripts" / "run_notebooks.py"
    done = subprocess.run(
        [notebook_python, str(script), "params.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text())["notebooks"]
    assert report["good.ipynb"]["status"] == "ok"
    bad = report["bad.ipynb"]
    assert (bad["status"], bad["cell_index"], bad["ename"]) == ("failed", 1, "ValueError")
    assert "broken data" in bad["evalue"]
    assert report["slow.ipynb"]["status"] == "timeout"
    assert "bad.ipynb failed: ValueError" in done.stderr
    # The executed notebooks stay beside the report for the build logs, the failing cell's
    # error output included; a notebook killed at its time limit leaves none.
    executed = json.loads((tmp_path / "executed" / "bad.ipynb").read_text())
    error = executed["cells"][1]["outputs"][0]
    assert (error["output_type"], error["ename"]) == ("error", "ValueError")
    assert (tmp_path / "executed" / "good.ipynb").exists()


async def test_a_connection_cut_mid_command_is_a_connection_error_not_a_failed_command(
    sshd: SshdServer, runner: SshRunner
) -> None:
    """An SSH drop (localcloud's fault plan cuts sessions the same way): the command never
    reported an exit status, so it is transient, not the command's failure."""
    from localcloud.sandbox.ssh_drops import drop_sessions

    command = asyncio.ensure_future(runner.run(RemoteCommand(("sleep", "30"), timeout_s=60)))
    await asyncio.sleep(1)
    assert await asyncio.to_thread(drop_sessions, sshd.pid) >= 1
    with pytest.raises(SshConnectionError, match="sleep"):
        await asyncio.wait_for(command, 20)


async def test_end_job_stops_an_earlier_run_left_running_and_clears_it(
    runner: SshRunner, job_name: str
) -> None:
    """What an invocation cut off mid-way (host killed, SSH dropped) leaves behind does not
    outlive the next run's start: a fresh start finds the name free (no 'already-started')."""
    assert await start_job(runner, job_name, "#!/bin/sh\nsleep 100\n", [], timeout_s=300)
    await asyncio.sleep(0.5)
    pid = (await read_job_file(runner, job_name, "pid")).strip()
    await end_job(runner, job_name)
    assert not (await poll_job(runner, job_name)).exists
    alive = await runner.run(RemoteCommand(("kill", "-0", pid), 10, sudo=True))
    assert alive.exit_status != 0  # the earlier run is gone, not only its folder
    assert await start_job(runner, job_name, "#!/bin/sh\nsleep 100\n", [], timeout_s=300)
    await end_job(runner, job_name)
