"""The labimage command against the real Functions app, run by the local Functions host on its
own Azurite. Only the HTTP functions run: no stage executes, so no Resource Manager is needed;
builds in other states are written to the table as the pipeline would write them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient
from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.main import main
from localcloud import azurite
from localcloud.funchost.easyauth import mint_token
from localcloud.funchost.hostkeys import read_host_keys
from shared.state.machine import Stage
from shared.state.record import Build, BuildState, StageRecord, new_build_id, utcnow
from shared.state.store import BuildStore

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-request.json"
REQUEST = json.loads(SEED.read_text())

# Lists the app's functions in a child process: get_functions() may run once per process.
_LIST_FUNCTIONS = """
import function_app
for f in function_app.app.get_functions():
    print(f.get_function_name(), f.get_bindings()[0].type)
"""


@dataclass
class Api:
    url: str
    store: BuildStore
    function_key: str  # the automation routes: an administrator's view
    secrets: Path  # where localcloud signs in test principals
    connection: str  # the app's storage account (its queues)


@dataclass
class Run:
    code: int
    out: str
    err: str


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The real app on its own Azurite (its queue and table names are fixed: keep them apart)."""
    folder = tmp_path_factory.mktemp("cli-api")
    ports = azurite.AzuritePorts(azurite.free_port(), azurite.free_port(), azurite.free_port())
    storage = azurite.start(folder / "azurite", ports, log=folder / "azurite.log")
    host: subprocess.Popen[bytes] | None = None
    try:
        connection = azurite.connection_string(ports)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AzureWebJobsStorage": connection,
            "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
            "LABIMAGE_RESOURCE_GROUP": "labimage-cli-test",
            "LABIMAGE_LOCATION": "westeurope",
            "LABIMAGE_SSH_KEY_DIR": str(folder / "keys"),
            "LABIMAGE_SSH_SOURCE_CIDR": "127.0.0.1/32",
            "LABIMAGE_DATA_STORAGE": connection,
            "LABIMAGE_DATA_CONTAINERS": "ooi-data",
            # Nothing should call these; if something did, it stays on loopback and fails.
            "LABIMAGE_ARM_ENDPOINT": f"https://127.0.0.1:{azurite.free_port()}",
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{azurite.free_port()}/msi/token",
            "IDENTITY_HEADER": "unused",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "",
            "BUILD_REQUESTS_QUEUE": "build-requests",  # the queue consumer runs too
        }
        listed = subprocess.run(
            [sys.executable, "-c", _LIST_FUNCTIONS],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        for line in filter(None, listed):
            name, trigger = line.split()
            if trigger != "httpTrigger" and name != "submit_from_queue":
                env[f"AzureWebJobs.{name}.Disabled"] = "true"
        port = azurite.free_port()
        url = f"http://127.0.0.1:{port}"
        log = folder / "host.log"
        with open(log, "wb") as out:
            host = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "localcloud.funchost",
                    "--app-dir",
                    str(ROOT),
                    "--port",
                    str(port),
                    # App Service authentication as the Bicep deploys it; keys in the folder.
                    "--state-dir",
                    str(folder),
                    "--auth-settings",
                    str(ROOT / "infra" / "authsettings.json"),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/api/openapi.json"):
            if host.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"host did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Api(
            url,
            BuildStore.from_connection_string(connection, "builds"),
            read_host_keys(folder / "funchost")["default"],
            folder / "funchost",
            connection,
        )
    finally:
        if host is not None:
            host.terminate()
            try:
                host.wait(timeout=15)
            except subprocess.TimeoutExpired:
                host.kill()
        storage.terminate()
        try:
            storage.wait(timeout=10)
        except subprocess.TimeoutExpired:
            storage.kill()


def run(api: Api, *argv: str, as_user: str | None = None) -> Run:
    """The command as an administrator with the function key, or signed in as `as_user`; its
    output goes to a pipe (what a script sees)."""
    out_file, err_file = io.StringIO(), io.StringIO()
    out = Console(file=out_file, width=220, force_terminal=False)
    err = Console(file=err_file, width=220, force_terminal=False)
    door = (
        ["--token", mint_token(api.secrets, as_user)]
        if as_user
        else ["--function-key", api.function_key]
    )
    code = main(["--api-url", api.url, *door, *argv], Consoles(out, err))
    return Run(code, out_file.getvalue(), err_file.getvalue())


def seeded(api: Api, state: BuildState, owner: str = "seed@example.org", **fields: Any) -> Build:
    """A build record as the pipeline leaves it in `state`, written straight to the table."""
    start = utcnow() - timedelta(minutes=5)
    request = {**REQUEST, "owner": owner}
    build = Build(
        id=new_build_id(),
        request=request,
        owner=owner,
        state=state,
        created_at=start,
        updated_at=start + timedelta(seconds=90),
        **fields,
    )
    api.store.create(build)
    return build


def failed_build(api: Api) -> Build:
    start = utcnow() - timedelta(minutes=5)
    return seeded(
        api,
        BuildState.FAILED,
        stage=Stage.DONE,
        error="install failed permanently: uv exited 2: No solution found for numpy>=99",
        stages={
            "provision": StageRecord(
                state="succeeded",
                started_at=start,
                finished_at=start + timedelta(seconds=20),
                polls=6,
            ),
            "mount": StageRecord(
                state="succeeded",
                started_at=start + timedelta(seconds=21),
                finished_at=start + timedelta(seconds=24),
            ),
            "install": StageRecord(
                state="failed",
                started_at=start + timedelta(seconds=25),
                finished_at=start + timedelta(seconds=60),
                last_error="uv exited 2",
            ),
            "cleanup": StageRecord(
                state="succeeded",
                started_at=start + timedelta(seconds=61),
                finished_at=start + timedelta(seconds=90),
            ),
        },
    )


def test_submit_records_a_build_the_api_then_shows(api: Api) -> None:
    result = run(api, "submit", str(SEED))
    assert result.code == 0, result.err
    build_id = result.out.split()[1]
    assert f"{api.url}/api/builds/{build_id}" in result.out
    snapshot = run(api, "status", build_id, "--json")
    assert snapshot.code == 0
    status = json.loads(snapshot.out)
    assert status["id"] == build_id and status["state"] == "queued"
    assert api.store.get(build_id).build.request["name"] == REQUEST["name"]


def test_signed_in_users_see_their_own_builds_only(api: Api) -> None:
    """Through localcloud's App Service authentication, as on Azure: a token, not a key."""
    result = run(api, "submit", str(SEED), as_user="alice@example.org")
    assert result.code == 0, result.err
    build_id = result.out.split()[1]
    assert run(api, "status", build_id, as_user="alice@example.org").code == 0
    theirs = run(api, "status", build_id, as_user="bob@example.org")
    assert theirs.code == 1 and "404" in theirs.err
    listed = json.loads(run(api, "list", "--json", as_user="bob@example.org").out)
    assert listed["builds"] == []
    assert run(api, "cancel", build_id, as_user="bob@example.org").code == 1
    assert not api.store.get(build_id).build.cancel_requested
    anonymous = main(["--api-url", api.url, "status", build_id], Consoles(Console(), Console()))
    assert anonymous == 1


def test_submitting_again_with_the_same_idempotency_key_finds_the_same_build(api: Api) -> None:
    first = run(api, "submit", str(SEED), "--idempotency-key", "cli-retry-1")
    again = run(api, "submit", str(SEED), "--idempotency-key", "cli-retry-1")
    assert first.code == again.code == 0, again.err
    build_id = first.out.split()[1]
    assert again.out.split()[1] == build_id and "already submitted" in again.out
    assert f"{api.url}/api/builds/{build_id}" in again.out


def test_submit_through_the_queue_gets_the_answer_on_a_reply_queue(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABIMAGE_QUEUE_CONNECTION", api.connection)
    assert run(api, "submit", str(SEED), "--queue").code == 2  # no queue yet: says so
    QueueClient.from_connection_string(api.connection, "build-requests").create_queue()
    result = run(api, "submit", str(SEED), "--queue", "--idempotency-key", "queued-1")
    assert result.code == 0, result.err
    build_id = result.out.split()[1]
    assert api.store.get(build_id).build.request["name"] == REQUEST["name"]
    again = run(api, "submit", str(SEED), "--queue", "--idempotency-key", "queued-1")
    assert again.code == 0 and again.out.split()[1] == build_id  # one build per key
    service = QueueServiceClient.from_connection_string(api.connection)
    left = [q.name for q in service.list_queues() if q.name.startswith("labimage-reply-")]
    assert left == []  # each submit deleted its own reply queue
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**REQUEST, "owner": "x y"}))
    refused = run(api, "submit", str(bad), "--queue")
    assert refused.code == 2  # refused locally, nothing sent
    monkeypatch.delenv("LABIMAGE_QUEUE_CONNECTION")
    assert run(api, "submit", str(SEED), "--queue").code == 2


def test_invalid_request_exits_2_and_nothing_is_recorded(api: Api, tmp_path: Path) -> None:
    owner = "invalid@example.org"
    bad = {**REQUEST, "owner": owner, "data_disk": {**REQUEST["data_disk"], "size_gb": 99999}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = run(api, "submit", str(path), "--wait")
    assert result.code == 2
    assert "data_disk.size_gb" in result.err and "nothing was sent" in result.err
    assert json.loads(run(api, "list", "--owner", owner, "--json").out)["builds"] == []


def test_a_failed_build_exits_3_with_its_error_and_stage_times(api: Api) -> None:
    build = failed_build(api)
    watched = run(api, "watch", build.id)
    assert watched.code == 3
    assert "No solution found for numpy>=99" in watched.out
    assert f"build {build.id} failed after 1 m 30 s" in watched.out
    times = watched.out[watched.out.index("per-stage times") :]
    assert "20.0 s" in times and "35.0 s" in times  # provision, install
    assert "verify" not in watched.out  # never reached
    assert run(api, "status", build.id).code == 3


def test_the_installed_command_exits_3_for_a_failed_build_and_4_when_unreachable(
    api: Api,
) -> None:
    command = Path(sys.executable).parent / "labimage"
    assert command.exists(), "pip install -e . installs the labimage console script"
    build = failed_build(api)
    env = {**os.environ, "LABIMAGE_API_URL": api.url, "LABIMAGE_FUNCTION_KEY": api.function_key}
    failed = subprocess.run([str(command), "status", build.id], env=env, capture_output=True)
    assert failed.returncode == 3
    env["LABIMAGE_API_URL"] = f"http://127.0.0.1:{azurite.free_port()}"
    down = subprocess.run([str(command), "list"], env=env, capture_output=True, text=True)
    assert down.returncode == 4 and "cannot reach" in down.stderr


def test_watch_follows_a_build_stage_by_stage_to_its_result(api: Api) -> None:
    build = seeded(api, BuildState.RUNNING, stage=Stage.PROVISION)
    build = api.store.get(build.id).build
    steps = [
        ("provision", "creating VM vm-" + build.id),
        ("mount", "data disk mounted at /datadrive"),
        ("install", "Python 3.11 and Jupyter installed"),
        ("verify", "2 notebooks passed"),
    ]

    def advance() -> None:
        """Move the record through the stages as the pipeline would, one write at a time."""
        for name, message in steps:
            time.sleep(0.4)
            stored = api.store.get(build.id)
            now = utcnow()
            current = stored.build.with_stage_record(
                name,
                StageRecord(
                    state="succeeded", started_at=now - timedelta(seconds=2), finished_at=now
                ),
            ).with_event(message, name)
            api.store.replace(stored, current.model_copy(update={"stage": Stage(name)}))
        stored = api.store.get(build.id)
        final = stored.build.with_outputs(
            image_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/img-x",
            verification={
                "jupyter": "answered",
                "notebooks": [{"name": "notebooks/ctd.ipynb", "status": "ok", "duration_s": 4.5}],
            },
            connection={
                "ssh_command": "ssh -i k azureuser@10.213.0.9",
                "tunnel_command": "ssh -i k -N -L 7005:localhost:8889 azureuser@10.213.0.9",
                "jupyter_url": "http://localhost:7005/lab",
            },
        ).with_event("build succeeded", "cleanup")
        api.store.replace(
            stored, final.model_copy(update={"state": BuildState.SUCCEEDED, "stage": Stage.DONE})
        )

    writer = threading.Thread(target=advance)
    writer.start()
    try:
        result = run(api, "watch", build.id, "--interval", "0.2", "--timeout", "60")
    finally:
        writer.join()
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    for _, message in steps:
        assert sum(message in line for line in lines) >= 1
    shown = [line for line in lines if any(m in line for _, m in steps)][: len(steps)]
    assert [next(n for n, m in steps if m in line) for line in shown] == [n for n, _ in steps]
    assert "images/img-x" in result.out
    assert "verification on the build VM: Jupyter answered" in result.out
    assert "notebooks/ctd.ipynb" in result.out and "passed" in result.out
    assert "ssh -i k -N -L 7005:localhost:8889 azureuser@10.213.0.9" in result.out


def test_list_pages_through_every_build_of_an_owner(api: Api) -> None:
    owner = "pages@example.org"
    made = {seeded(api, BuildState.SUCCEEDED, owner=owner).id for _ in range(3)}
    first = run(api, "list", "--owner", owner, "--page-size", "2")
    assert first.code == 0 and "--page-token" in first.out
    every = json.loads(
        run(api, "list", "--owner", owner, "--page-size", "2", "--all", "--json").out
    )
    assert {b["id"] for b in every["builds"]} == made and every["next_page_token"] is None
    assert run(api, "list", "--state", "succeeded", "--owner", owner).code == 0


def test_cancel_events_and_a_second_cancel(api: Api) -> None:
    build = seeded(api, BuildState.RUNNING)
    assert run(api, "cancel", build.id).code == 0
    events = run(api, "events", build.id)
    assert events.code == 0 and "cancel requested" in events.out
    done = failed_build(api)
    conflict = run(api, "cancel", done.id)
    assert conflict.code == 1 and "already failed" in conflict.err


def test_unknown_build_exits_1(api: Api) -> None:
    result = run(api, "status", "bnosuchbld")
    assert result.code == 1 and "there is no build 'bnosuchbld'" in result.err


def test_costs_either_summarises_or_says_the_server_has_none(api: Api) -> None:
    result = run(api, "costs", "--from", "2026-01-01", "--to", "2026-01-31")
    if result.code == 0:
        assert result.out.strip()
    else:
        assert result.code == 1 and "no cost endpoint" in result.err
