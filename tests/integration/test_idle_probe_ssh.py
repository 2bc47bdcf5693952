"""The idle probe over a real OpenSSH server, run with sudo as on a kept VM: it finds the
Jupyter server through the runtime file in the admin user's home, asks /api/status and
/api/kernels on the guest's loopback with that file's token, and sends back only the figures.

The "guest" here is this machine: sshd on 127.0.0.1 with a throwaway sudo user, and a small
HTTP server standing in for Jupyter (it answers only with the right token, as Jupyter does).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sshd_server import SshdServer, running_sshd, unavailable_reason

from shared.costguard.idle import judge
from shared.costguard.idle_probe import PROBE_COMMAND, parse_probe, probe_activity
from shared.ssh.runner import connect

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

LAST_ACTIVITY = datetime(2024, 1, 15, 17, 0, tzinfo=UTC)


@dataclass
class FakeJupyter:
    """Jupyter's /api/status and /api/kernels on 127.0.0.1, behind a token."""

    token: str
    kernels: list[dict[str, Any]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    port: int = 0

    def serve(self) -> ThreadingHTTPServer:
        jupyter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("authorization") != f"token {jupyter.token}":
                    self.send_error(403)
                    return
                jupyter.asked.append(self.path)
                bodies = {
                    "/lab/api/status": {
                        "started": "2024-01-15T16:00:00Z",
                        "last_activity": LAST_ACTIVITY.isoformat().replace("+00:00", "Z"),
                        "connections": 1,
                        "kernels": len(jupyter.kernels),
                    },
                    "/lab/api/kernels": jupyter.kernels,
                }
                path = self.path.split("?", 1)[0]
                if path not in bodies:
                    self.send_error(404)
                    return
                data = json.dumps(bodies[path]).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(server.server_address[1])
        return server


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshdServer]:
    with running_sshd() as server:
        yield server


@pytest.fixture
def jupyter(sshd: SshdServer) -> Iterator[FakeJupyter]:
    """A fake Jupyter serving under /lab/, announced by a runtime file in the user's home."""
    fake = FakeJupyter(token=secrets.token_hex(24))
    server = fake.serve()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    runtime_dir = sshd.home / ".local" / "share" / "jupyter" / "runtime"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    info = runtime_dir / "jpserver-4242.json"
    # The file Jupyter Server writes: the probe reads port, base_url and token from it.
    info.write_text(
        json.dumps(
            {"port": fake.port, "base_url": "/lab/", "token": fake.token, "url": "http://x/"}
        )
    )
    info.chmod(0o600)  # as Jupyter makes it: only root (the probe runs with sudo) may read it
    try:
        yield fake
    finally:
        info.unlink(missing_ok=True)
        server.shutdown()
        server.server_close()
        thread.join(5)


def kernel(state: str, last: datetime) -> dict[str, Any]:
    return {
        "id": "k1",
        "name": "python3",
        "execution_state": state,
        "last_activity": last.isoformat().replace("+00:00", "Z"),
        "connections": 1,
    }


async def test_a_busy_notebook_is_seen_and_keeps_the_vm_running(
    sshd: SshdServer, jupyter: FakeJupyter
) -> None:
    jupyter.kernels = [kernel("busy", LAST_ACTIVITY - timedelta(hours=3))]
    async with connect(sshd.target()) as runner:
        activity = await probe_activity(runner)
    # Asking for the kernels must not count as activity, or each probe would reset the clock.
    assert jupyter.asked == ["/lab/api/status", "/lab/api/kernels?no_track_activity=1"]
    assert activity.jupyter_running
    assert activity.last_activity == LAST_ACTIVITY and activity.connections == 1
    assert [k.execution_state for k in activity.kernels] == ["busy"]
    assert 0.0 <= activity.cpu_percent <= 100.0
    now = LAST_ACTIVITY + timedelta(hours=5)
    verdict = judge(activity, now, timedelta(minutes=60), None, cpu_threshold=101)
    assert not verdict.idle and "notebook is running" in verdict.reason


async def test_an_idle_jupyter_is_judged_idle_from_its_own_record_and_the_token_stays_there(
    sshd: SshdServer, jupyter: FakeJupyter
) -> None:
    jupyter.kernels = [kernel("idle", LAST_ACTIVITY - timedelta(minutes=10))]
    async with connect(sshd.target()) as runner:
        result = await runner.check(PROBE_COMMAND)
    assert jupyter.token not in result.stdout
    activity = parse_probe(result.stdout)
    now = LAST_ACTIVITY + timedelta(minutes=90)
    verdict = judge(activity, now, timedelta(minutes=60), None, cpu_threshold=101)
    assert verdict.idle and verdict.idle_since == LAST_ACTIVITY


async def test_a_runtime_file_with_a_stale_token_counts_as_no_jupyter(
    sshd: SshdServer, jupyter: FakeJupyter
) -> None:
    info = sshd.home / ".local/share/jupyter/runtime/jpserver-4242.json"
    stale = json.loads(info.read_text()) | {"token": "not-the-token"}
    info.write_text(json.dumps(stale))
    async with connect(sshd.target()) as runner:
        activity = await probe_activity(runner)
    assert not activity.jupyter_running and activity.kernels == []
    assert jupyter.asked == []
