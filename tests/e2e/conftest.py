"""One localcloud for the end-to-end tests: its own state folder and ports, torn down after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcloud.funchost.easyauth import mint_token
from localcloud.funchost.hostkeys import read_host_keys
from localcloud.seed_content import seed_ooi
from shared.azure.clients import AzureClients
from shared.settings import Settings, read_settings
from shared.state.store import BuildStore

ROOT = Path(__file__).resolve().parents[2]
# LABIMAGE_E2E_PORT_OFFSET moves every port, so two checkouts can run their e2e suites at once.
_OFFSET = int(os.environ.get("LABIMAGE_E2E_PORT_OFFSET", "0"))
PORTS = {
    name: port + _OFFSET
    for name, port in {
        "blob": 20000,
        "queue": 20001,
        "table": 20002,
        "arm": 28443,
        "identity": 28444,
        "git": 28445,
        "functions": 27071,
    }.items()
}
TERMINAL = {"succeeded", "failed", "cancelled"}
# App Service authentication as the Bicep deploys it; the tests sign in as the seed request's
# owner, holding the administrator role (the cost and admin views need it).
AUTH_SETTINGS = ROOT / "infra" / "authsettings.json"
TEST_PRINCIPAL = "alice@example.org"
ADMIN_ROLE = "labimage.admin"


@dataclass
class Cloud:
    state_dir: Path
    env: dict[str, Any]

    @property
    def api(self) -> str:
        return str(self.env["endpoints"]["functions"])

    @property
    def settings(self) -> Settings:
        return read_settings(self.env["settings"])

    def azure(self) -> AzureClients:
        return AzureClients(self.settings)

    def store(self) -> BuildStore:
        return BuildStore.from_connection_string(self.settings.storage_connection, "builds")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the API signed in as the test principal (the host's admin API: master key)."""
        data = json.dumps(body).encode() if body is not None else None
        secrets = self.state_dir / "funchost"
        headers = {"content-type": "application/json"}
        if path.startswith("/admin/"):
            headers["x-functions-key"] = read_host_keys(secrets)["master"]
        token = mint_token(secrets, TEST_PRINCIPAL, roles=(ADMIN_ROLE,))
        headers["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def seed_request(self, **changes: Any) -> dict[str, Any]:
        """examples/seed-request.json, pointed at this instance's git server."""
        request = json.loads((ROOT / "examples" / "seed-request.json").read_text())
        for repo in request["repositories"]:
            repo["url"] = repo["url"].replace(":8445/", f":{PORTS['git']}/")
        request.update(changes)
        return request

    def submit(self, request: dict[str, Any]) -> str:
        code, body = self.request("POST", "/api/builds", request)
        assert code == 202, body
        return str(body["id"])

    def queue(self, name: str) -> Any:
        """A queue of the instance's account (made if missing), base64 as the host reads."""
        import contextlib

        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import (
            QueueClient,
            TextBase64DecodePolicy,
            TextBase64EncodePolicy,
        )

        client = QueueClient.from_connection_string(
            self.settings.storage_connection,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def next_reply(self, reply_to: str, timeout_s: float = 120) -> dict[str, Any]:
        """The next message on a reply queue, as JSON."""
        replies = self.queue(reply_to)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in replies.receive_messages(max_messages=1):
                replies.delete_message(message)
                return dict(json.loads(message.content))
            time.sleep(0.5)
        pytest.fail(f"no reply on {reply_to} in {timeout_s} s")

    def submit_via_queue(self, request: dict[str, Any], reply_to: str) -> str:
        """Send `request` to the build-requests queue; the id its accepted reply names."""
        self.queue(reply_to)
        envelope = {"request": request, "client_request_id": reply_to, "reply_to": reply_to}
        self.queue("build-requests").send_message(json.dumps(envelope))
        answer = self.next_reply(reply_to)
        assert answer["status"] == "accepted", answer
        return str(answer["id"])

    def status(self, build_id: str) -> dict[str, Any]:
        code, body = self.request("GET", f"/api/builds/{build_id}")
        assert code == 200, body
        return dict(body)

    def wait(self, build_id: str, timeout_s: float = 900, until: Any = None) -> dict[str, Any]:
        """Poll until the build is finished (or `until(status)` holds); fail on time-out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status(build_id)
            if (until and until(status)) or (until is None and status["state"] in TERMINAL):
                return status
            if until and status["state"] in TERMINAL:
                pytest.fail(f"build {build_id} ended {status['state']} early: {status['error']}")
            time.sleep(0.3)
        pytest.fail(f"build {build_id} did not get there in {timeout_s} s: {self.status(build_id)}")


# Settings the e2e instance runs with, on top of localcloud's own.
# LABIMAGE_IDLE_CPU_PERCENT=100: a sandbox's /proc/stat is the whole host's, so the idle probe's
# CPU figure counts every other process on this machine (other builds, pytest, the emulators)
# and would call an idle VM busy at random. At 100 the CPU rule never fires here, so in
# localcloud idleness is decided by Jupyter's own record alone. Azure VMs keep the default (10).
UP_SETTINGS = {"LABIMAGE_IDLE_CPU_PERCENT": "100"}
# A fresh VM holds dpkg's lock at first boot (Ubuntu's apt-daily); 45 s by default. Short here to
# keep the suite fast; test_first_boot_lock.py runs one build with the realistic time.
FIRST_BOOT_LOCK_S = 8


def _localcloud(command: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    flags = [f"--{name}-port={port}" for name, port in PORTS.items()]
    if command == "up":
        flags += [f"--setting={name}={value}" for name, value in UP_SETTINGS.items()]
        flags.append(f"--first-boot-lock-seconds={FIRST_BOOT_LOCK_S}")
        flags.append(f"--auth-settings={AUTH_SETTINGS}")
    return subprocess.run(
        [sys.executable, "-m", "localcloud", command, "--state-dir", str(state_dir), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def cloud() -> Iterator[Cloud]:
    if os.geteuid() != 0:
        pytest.skip("localcloud needs root (namespaces, loop devices, mounts)")
    state_dir = Path(tempfile.mkdtemp(prefix="labimage-e2e-"))
    started = _localcloud("up", state_dir)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        env = json.loads((state_dir / "env.json").read_text())
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            os.environ[name] = env["settings"][name]
        seed_ooi(env["settings"]["AzureWebJobsStorage"], state_dir / "git")
        yield Cloud(state_dir, env)
    finally:
        stopped = _localcloud("down", state_dir)
        print(stopped.stdout, stopped.stderr)
        shutil.rmtree(state_dir, ignore_errors=True)
