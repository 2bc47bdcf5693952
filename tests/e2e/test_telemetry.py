"""A build on its own localcloud exports one span per stage invocation to a local ingestion stub.

The instance has its own state folder and ports (the connection string has to be in the
Functions host's environment from the start, so the shared `cloud` fixture will not do).
"""

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
from pathlib import Path
from typing import Any

import pytest

from localcloud.funchost.hostkeys import read_host_keys
from tests.e2e.ingestion_stub import OFFLINE_SETTINGS, IngestionStub

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
_OFFSET = int(os.environ.get("LABIMAGE_E2E_PORT_OFFSET", "0"))
# Below the kernel's ephemeral range (32768-60999), where an outgoing connection can hold a
# port first (a CI run lost Azurite's queue port 35001 that way), and apart from conftest's.
PORTS = {
    name: port + _OFFSET
    for name, port in {
        "blob": 22000,
        "queue": 22001,
        "table": 22002,
        "arm": 22443,
        "identity": 22444,
        "git": 22445,
        "functions": 22071,
    }.items()
}
IDENTITY_ENV = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")


def _localcloud(command: str, state_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    flags = [f"--{name}-port={port}" for name, port in PORTS.items()]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "localcloud",
            command,
            "--state-dir",
            str(state_dir),
            *flags,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def traced_cloud() -> Iterator[tuple[IngestionStub, dict[str, Any]]]:
    if os.geteuid() != 0:
        pytest.skip("localcloud needs root (namespaces, loop devices, mounts)")
    state_dir = Path(tempfile.mkdtemp(prefix="labimage-telemetry-"))
    with IngestionStub() as stub:
        settings = {
            **OFFLINE_SETTINGS,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": stub.connection_string,
        }
        flags = [f"--setting={name}={value}" for name, value in settings.items()]
        try:
            started = _localcloud("up", state_dir, *flags)
            assert started.returncode == 0, started.stdout + started.stderr
            env = json.loads((state_dir / "env.json").read_text())
            yield stub, env
        finally:
            stopped = _localcloud("down", state_dir)
            print(stopped.stdout, stopped.stderr)
            shutil.rmtree(state_dir, ignore_errors=True)


def _call(api: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Through the automation routes with a function key (this instance has no sign-in)."""
    data = json.dumps(body).encode() if body is not None else None
    path = path.replace("/api/", "/api/automation/", 1)
    headers = {"content-type": "application/json", "x-functions-key": key}
    request = urllib.request.Request(f"{api}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _small_request() -> dict[str, Any]:
    """The seed request without data, notebooks or a relaunch: every stage, quickly."""
    request = json.loads((ROOT / "examples" / "seed-request.json").read_text())
    request.update(name="telemetry", data=[], repositories=[], image={"name": "telemetry"})
    request.pop("notebooks", None)
    request["python"]["packages"] = ["jupyterlab>=4"]
    request["relaunch"] = {"verify": False, "keep_running": False}
    return request


def test_every_stage_of_a_build_sends_a_span(
    traced_cloud: tuple[IngestionStub, dict[str, Any]],
) -> None:
    stub, env = traced_cloud
    api = env["endpoints"]["functions"]
    key = read_host_keys(Path(env["state_dir"]) / "funchost")["default"]
    code, body = _call(api, key, "POST", "/api/builds", _small_request())
    assert code == 202, body
    build_id = body["id"]
    deadline = time.monotonic() + 900
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, status = _call(api, key, "GET", f"/api/builds/{build_id}")
        if status["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert status.get("state") == "succeeded", status

    ran = {stage["name"] for stage in status["stages"] if stage["state"] != "pending"}
    assert {"provision", "mount", "install", "verify", "capture", "cleanup"} <= ran

    def stage_spans() -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        for item in stub.spans():
            props = item.get("properties", {})
            if props.get("labimage.build_id") == build_id and item["name"].startswith("stage "):
                found.setdefault(props["labimage.stage"], []).append(props)
        return found

    # Spans leave in batches: give the last one a moment.
    deadline = time.monotonic() + 30

    def finished() -> set[str]:
        """Stages whose final (succeeded) span has arrived; earlier polls come first."""
        return {
            stage
            for stage, props in stage_spans().items()
            if any(p["labimage.outcome"] == "succeeded" for p in props)
        }

    while time.monotonic() < deadline and not ran <= finished():
        time.sleep(0.5)
    spans = stage_spans()
    assert ran <= set(spans), f"stages without a span: {ran - set(spans)}"
    for stage, props in spans.items():
        assert any(p["labimage.outcome"] == "succeeded" for p in props), (stage, props)
        assert all(p["labimage.vm_name"].startswith(f"labimage-{build_id}-") for p in props)
    names = {item["name"] for item in stub.spans()}
    assert any(name.startswith("arm create VM") for name in names)
    assert any(name.startswith("ssh ") for name in names)

    _, raw = stub.snapshot()
    assert "PRIVATE KEY-----" not in raw
    assert env["settings"]["IDENTITY_HEADER"] not in raw
    assert "&sig=" not in raw and "?sig=" not in raw
