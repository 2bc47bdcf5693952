"""`localcloud up|status|down` on a private state folder and free ports."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcloud import azurite, processes

REPO = Path(__file__).resolve().parents[2]
ARM_AVAILABLE = importlib.util.find_spec("localcloud.arm.__main__") is not None
PING_APP = """
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.timer_trigger(arg_name="timer", schedule="%AUTOSTOP_SCHEDULE%")
def autostop(timer: func.TimerRequest) -> None:
    pass
"""
PORT_NAMES = ("blob", "queue", "table", "arm", "identity", "git", "functions", "vault")


@dataclass
class Instance:
    state: Path
    app_dir: Path
    env: dict[str, str]
    ports: dict[str, int]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        flags = ["--state-dir", str(self.state)]
        if args[0] == "up":
            flags += ["--app-dir", str(self.app_dir), "--records-only"]
            for name, port in self.ports.items():
                flags += [f"--{name}-port", str(port)]
        return subprocess.run(
            [sys.executable, "-m", "localcloud", *args, *flags],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def env_json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.state / "env.json").read_text())
        return data


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(PING_APP)
    env = {**os.environ, "LOCALCLOUD_REGISTRY": str(tmp_path / "registry")}
    ports = {name: azurite.free_port() for name in PORT_NAMES}
    made = Instance(tmp_path / "state", app_dir, env, ports)
    try:
        yield made
    finally:
        made.run("down")


def _up_ok(result: subprocess.CompletedProcess[str]) -> None:
    if ARM_AVAILABLE:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1, result.stderr
        assert "ARM emulator is not available" in result.stderr


def test_up_starts_everything_and_writes_env_json(instance: Instance) -> None:
    result = instance.run("up")
    _up_ok(result)
    env = instance.env_json()
    settings = env["settings"]
    assert isinstance(settings, dict)
    expected = {
        "AzureWebJobsStorage",
        "LABIMAGE_DATA_STORAGE",
        "AZURE_SUBSCRIPTION_ID",
        "LABIMAGE_RESOURCE_GROUP",
        "LABIMAGE_LOCATION",
        "LABIMAGE_ARM_ENDPOINT",
        "LABIMAGE_ARM_CA_BUNDLE",
        "LABIMAGE_SSH_KEY_DIR",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AUTOSTOP_SCHEDULE",
        "SWEEPER_SCHEDULE",
    }
    assert expected <= set(settings)
    assert (instance.state / "env.json").stat().st_mode & 0o777 == 0o600
    assert settings["IDENTITY_HEADER"] not in result.stdout + result.stderr
    assert "AccountKey" not in result.stdout
    functions = f"http://127.0.0.1:{instance.ports['functions']}"
    assert f"{functions}" in result.stdout
    with urllib.request.urlopen(f"{functions}/api/ping", timeout=5) as response:
        assert response.read() == b"pong"
    status = instance.run("status")
    assert status.returncode == 0, status.stdout
    assert "functions  up" in status.stdout and "git        up" in status.stdout


def test_up_twice_is_a_no_op(instance: Instance) -> None:
    _up_ok(instance.run("up"))
    pid = processes.read_pid(instance.state, "functions")
    secret = instance.env_json()["settings"]
    again = instance.run("up")
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert processes.read_pid(instance.state, "functions") == pid
    assert instance.env_json()["settings"] == secret


def test_down_stops_everything_twice_and_after_a_crash(instance: Instance) -> None:
    _up_ok(instance.run("up"))
    pids = [
        p for n in ("azurite", "git", "functions") if (p := processes.read_pid(instance.state, n))
    ]
    assert len(pids) == 3
    for pid in pids:  # a crash: everything dies, pid files stay behind
        os.kill(pid, signal.SIGKILL)
    down = instance.run("down")
    assert down.returncode == 0, down.stderr
    assert processes.processes_naming(instance.state) == []
    assert not (instance.state / "env.json").exists()
    assert instance.run("status").returncode == 3
    assert instance.run("down").returncode == 0
    _up_ok(instance.run("up"))  # and it comes back up
    assert instance.run("down").returncode == 0
    assert processes.processes_naming(instance.state) == []


def test_down_all_stops_every_registered_instance(instance: Instance, tmp_path: Path) -> None:
    _up_ok(instance.run("up"))
    assert str(instance.state) in (tmp_path / "registry").read_text()
    elsewhere = Instance(tmp_path / "elsewhere", instance.app_dir, instance.env, instance.ports)
    result = elsewhere.run("down", "--all")
    assert result.returncode == 0, result.stderr
    assert processes.processes_naming(instance.state) == []
    assert (tmp_path / "registry").read_text().strip() == ""


def test_a_missing_function_app_is_a_clear_error(instance: Instance) -> None:
    (instance.app_dir / "function_app.py").unlink()
    result = instance.run("up")
    assert result.returncode == 1
    assert "no function_app.py" in result.stderr
    status = instance.run("status")
    assert status.returncode == 3
    assert "functions  DOWN" in status.stdout
