"""The SSH layer against a real OpenSSH server on 127.0.0.1 with a throwaway sudo user."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import shutil
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sshd_server import SshdServer, running_sshd, unavailable_reason

from shared.ssh.errors import HostKeyMismatch, RemoteCommandError, SshConnectionError
from shared.ssh.forward import forward_local_port
from shared.ssh.jobs import JOBS_ROOT, poll_job, read_job_file, run_script, start_job, stop_job
from shared.ssh.keys import generate_keypair
from shared.ssh.quoting import RemoteCommand
from shared.ssh.runner import SshRunner, connect, open_runner

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


async def test_check_raises_with_status_and_stderr_tail(runner: SshRunner) -> None:
    with pytest.raises(RemoteCommandError) as caught:
        await runner.check(RemoteCommand(("ls", "/no/such/dir"), 10))
    assert caught.value.exit_status == 2
    assert "/no/such/dir" in caught.value.stderr_tail


async def test_sudo_runs_as_root(runner: SshRunner) -> None:
    plain = await runner.check(RemoteCommand(("id", "-un"), 10))
    root = await runner.check(RemoteCommand(("id", "-un"), 10, sudo=True))
    assert (plain.stdout.strip(), root.stdout.strip()) == ("labimage-test", "root")


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
