"""The local Functions host runs a real function app against a real Azurite."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient

from localcloud import azurite
from localcloud.funchost.easyauth import mint_token
from localcloud.funchost.hostkeys import read_host_keys
from localcloud.funchost.invoke import worker_thread_count

FIXTURE_APP = Path(__file__).parent / "fixtures" / "funcapp"
REPO = Path(__file__).resolve().parents[2]


# App Service authentication as an authsettingsV2 document would set it: sign-in required, 401
# for anonymous callers, the automation folder and the probe's build routes left to keys.
AUTH_SETTINGS = {
    "properties": {
        "platform": {"enabled": True},
        "globalValidation": {
            "requireAuthentication": True,
            "unauthenticatedClientAction": "Return401",
            "excludedPaths": ["/api/automation/*", "/api/builds/*", "/admin/*"],
        },
    }
}


@dataclass
class RunningHost:
    url: str
    connection: str
    queues: dict[str, str]  # setting name -> queue name
    log: Path
    results: list[dict[str, Any]]
    secrets: Path  # host keys and sign-in key

    @property
    def master_key(self) -> dict[str, str]:
        return {"x-functions-key": read_host_keys(self.secrets)["master"]}

    def queue(self, setting: str, base64_encoded: bool = True) -> QueueClient:
        from azure.storage.queue import TextBase64EncodePolicy

        policy = TextBase64EncodePolicy() if base64_encoded else None
        return QueueClient.from_connection_string(
            self.connection, self.queues[setting], message_encode_policy=policy
        )

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 30
    ) -> list[dict[str, Any]]:
        """Results matching `match` once at least `count` of them arrived."""
        deadline = time.monotonic() + timeout
        with QueueClient.from_connection_string(
            self.connection, self.queues["RESULTS_QUEUE"]
        ) as results:
            while True:
                for message in results.receive_messages(max_messages=32):
                    self.results.append(json.loads(base64.b64decode(message.content)))
                    results.delete_message(message)
                found = [r for r in self.results if match(r)]
                if len(found) >= count:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"only {len(found)} of {count} results; log:\n{self.tail()}"
                    )
                time.sleep(0.05)

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-40:])


def echoed(fragment: str) -> Callable[[dict[str, Any]], bool]:
    """Matches results of the echo function whose body contains `fragment`."""
    return lambda r: r["function"] == "echo" and fragment in r["body"]


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def host(
    azurite_connection_string: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHost]:
    app_dir = tmp_path_factory.mktemp("funcapp")
    shutil.copytree(
        FIXTURE_APP, app_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    suffix = uuid.uuid4().hex[:8]
    queues = {
        name: f"{name.split('_')[0].lower()}-{suffix}"
        for name in ("ECHO_QUEUE", "HOP_QUEUE", "FAIL_QUEUE", "ASYNC_QUEUE", "RESULTS_QUEUE")
    }
    service = QueueServiceClient.from_connection_string(azurite_connection_string)
    for name in queues.values():
        service.create_queue(name)
    port = azurite.free_port()
    state = tmp_path_factory.mktemp("funchost-state")
    (state / "auth.json").write_text(json.dumps(AUTH_SETTINGS))
    env = {
        **os.environ,
        **queues,
        "AzureWebJobsStorage": azurite_connection_string,
        "TICK_SCHEDULE": "0 0 0 1 1 *",  # once a year: the test fires it through the admin API
        "PYTHONPATH": str(REPO),
    }
    log = app_dir / "host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.funchost",
                "--app-dir",
                str(app_dir),
                "--port",
                str(port),
                "--state-dir",
                str(state),
                "--auth-settings",
                str(state / "auth.json"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningHost(
        f"http://127.0.0.1:{port}", azurite_connection_string, queues, log, [], state / "funchost"
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{running.url}/admin/host/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"host did not start:\n{running.tail()}") from None
                time.sleep(0.1)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        for name in [*queues.values(), queues["FAIL_QUEUE"] + "-poison"]:
            with contextlib.suppress(ResourceNotFoundError):  # the poison queue may never exist
                service.delete_queue(name)


def test_queue_message_reaches_the_function_with_its_metadata(host: RunningHost) -> None:
    with host.queue("ECHO_QUEUE") as queue:
        sent = queue.send_message("hello")
    [seen] = host.wait_for(lambda r: r["function"] == "echo" and r["body"] == "hello")
    assert seen["id"] == sent.id
    assert seen["dequeue_count"] == 1
    assert seen["has_times"] and seen["has_pop_receipt"]
    with host.queue("ECHO_QUEUE") as queue:
        time.sleep(0.5)
        assert queue.get_queue_properties().approximate_message_count == 0  # deleted on success


def test_base64_bodies_round_trip_as_bytes(host: RunningHost) -> None:
    text = 'héllo ✓ {"build": "b-1"}'
    with host.queue("ECHO_QUEUE", base64_encoded=False) as queue:
        queue.send_message(base64.b64encode(text.encode()).decode())
    host.wait_for(lambda r: r["function"] == "echo" and r["body"] == text)


def test_async_functions_run(host: RunningHost) -> None:
    with host.queue("ASYNC_QUEUE") as queue:
        queue.send_message("from async")
    host.wait_for(lambda r: r["function"] == "async_echo" and r["body"] == "from async")


def test_failing_message_is_retried_then_moved_to_the_poison_queue(host: RunningHost) -> None:
    with host.queue("FAIL_QUEUE") as queue:
        queue.send_message("doomed")
    attempts = host.wait_for(lambda r: r["function"] == "always_fails", count=3)
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]  # maxDequeueCount is 3
    poison_name = host.queues["FAIL_QUEUE"] + "-poison"
    deadline = time.monotonic() + 10
    with QueueClient.from_connection_string(host.connection, poison_name) as poison:
        while True:
            try:
                messages = list(poison.peek_messages(max_messages=5))
            except Exception:
                messages = []
            if messages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert [base64.b64decode(m.content).decode() for m in messages] == ["doomed"]
    time.sleep(1)
    assert len(host.wait_for(lambda r: r["function"] == "always_fails", count=3)) == 3
    assert "Moving message to queue" in host.log.read_text()


def test_http_route_parameters_query_headers_and_body(host: RunningHost) -> None:
    status, body = _get(f"{host.url}/api/builds/b-42?verbose=yes", headers={"x-probe": "p"})
    assert status == 200
    assert json.loads(body) == {
        "id": "b-42",
        "method": "GET",
        "verbose": "yes",
        "header": "p",
        "body": "",
    }
    status, body = _get(f"{host.url}/api/builds/b-7", data=b"payload")
    assert json.loads(body)["method"] == "POST" and json.loads(body)["body"] == "payload"
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{host.url}/api/builds/nothing/here")
    assert missing.value.code == 404


def test_admin_endpoint_fires_a_timer_and_a_queue_function(host: RunningHost) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(f"{host.url}/admin/functions/tick", data=b"{}")
    assert refused.value.code == 401  # the admin API takes the master key only
    status, _ = _get(
        f"{host.url}/admin/functions/tick",
        data=b"{}",
        headers={"Content-Type": "application/json", **host.master_key},
    )
    assert status == 202
    [fired] = host.wait_for(lambda r: r["function"] == "tick")
    assert fired["past_due"] is False
    status, _ = _get(
        f"{host.url}/admin/functions/echo",
        data=json.dumps({"input": "by hand"}).encode(),
        headers={"Content-Type": "application/json", **host.master_key},
    )
    assert status == 202
    host.wait_for(lambda r: r["function"] == "echo" and r["body"] == "by hand")


def test_each_invocation_is_one_log_line(host: RunningHost) -> None:
    lines = [line for line in host.log.read_text().splitlines() if "Executed 'echo'" in line]
    assert lines and all("Succeeded" in line and "Duration=" in line for line in lines)
    assert not any("hello" in line for line in lines)  # bodies never appear in the log


def test_stage_hop_latency_is_well_under_a_second(host: RunningHost) -> None:
    """A function sends to the next stage's queue; the next function starts soon after."""
    hops = []
    with host.queue("HOP_QUEUE") as queue:
        for i in range(6):
            time.sleep(2.5)  # let the listeners back off to maxPollingInterval, the worst case
            queue.send_message(f"hop-{i}")
            [seen] = host.wait_for(echoed(f'"hop-{i}"'))
            hops.append(seen["at"] - json.loads(seen["body"])["sent"])
    median = statistics.median(hops)
    print(f"stage hop latency: median {median * 1000:.0f} ms, max {max(hops) * 1000:.0f} ms")
    assert median < 0.5


def _status(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    try:
        status, body = _get(url, headers=headers)
    except urllib.error.HTTPError as error:
        return error.code, None
    return status, json.loads(body)


def test_a_function_level_route_wants_a_function_key(host: RunningHost) -> None:
    url = f"{host.url}/api/automation/whoami"
    keys = read_host_keys(host.secrets)
    assert _status(url)[0] == 401
    assert _status(url, {"x-functions-key": "not-the-key"})[0] == 401
    assert _status(f"{url}?code=not-the-key")[0] == 401
    assert _status(url, {"x-functions-key": keys["default"]})[0] == 200
    assert _status(f"{url}?code={keys['default']}")[0] == 200
    assert _status(url, {"x-functions-key": keys["master"]})[0] == 200
    assert (host.secrets / "host-keys.json").stat().st_mode & 0o077 == 0


def test_sign_in_is_required_where_the_auth_settings_say(host: RunningHost) -> None:
    assert _status(f"{host.url}/api/whoami")[0] == 401
    expired = mint_token(host.secrets, "alice@example.org", lifetime_s=-60)
    assert _status(f"{host.url}/api/whoami", {"Authorization": f"Bearer {expired}"})[0] == 401
    forged = mint_token(host.secrets, "alice@example.org") + "x"
    assert _status(f"{host.url}/api/whoami", {"Authorization": f"Bearer {forged}"})[0] == 401


def test_a_signed_in_caller_reaches_the_app_as_the_principal_app_service_makes(
    host: RunningHost,
) -> None:
    token = mint_token(host.secrets, "alice@example.org", "0b1e-a11ce", ("labimage.admin",))
    forged = base64.b64encode(json.dumps({"claims": [{"typ": "oid", "val": "x"}]}).encode())
    status, seen = _status(
        f"{host.url}/api/whoami",
        {
            "Authorization": f"Bearer {token}",
            "X-MS-CLIENT-PRINCIPAL": forged.decode(),
            "X-MS-CLIENT-PRINCIPAL-NAME": "mallory",
        },
    )
    assert status == 200
    assert seen["principal_id"] == "0b1e-a11ce" and seen["principal_name"] == "alice@example.org"
    assert seen["auth_enabled"] == "True"
    principal = json.loads(base64.b64decode(seen["principal"]))
    claims = {(c["typ"], c["val"]) for c in principal["claims"]}
    assert ("http://schemas.microsoft.com/identity/claims/objectidentifier", "0b1e-a11ce") in claims
    assert ("roles", "labimage.admin") in claims
    assert principal["auth_typ"] == "aad" and "x" not in {v for _, v in claims}


def test_client_sent_principal_headers_never_reach_the_app(host: RunningHost) -> None:
    keys = read_host_keys(host.secrets)
    forged = base64.b64encode(b'{"claims": []}').decode()
    status, seen = _status(
        f"{host.url}/api/automation/whoami",
        {
            "x-functions-key": keys["default"],
            "X-MS-CLIENT-PRINCIPAL": forged,
            "x-ms-client-principal-id": "someone",
        },
    )
    assert status == 200
    assert seen["principal"] is None and seen["principal_id"] is None


@pytest.mark.parametrize(("blocker", "stalled"), [("block-async", True), ("block-sync", False)])
def test_a_blocking_async_function_stalls_the_others_and_a_sync_one_does_not(
    host: RunningHost, blocker: str, stalled: bool
) -> None:
    """As in the Python worker, async functions share the host's one event loop: a blocking
    call inside one stalls every other async function; a sync function runs in a thread."""
    signed_in = {"authorization": f"Bearer {mint_token(host.secrets, 'alice@example.org')}"}
    with ThreadPoolExecutor(max_workers=2) as pool:
        ticking = pool.submit(_get, f"{host.url}/api/ticker?seconds=2.5", None, signed_in)
        time.sleep(0.5)
        status, _ = _get(f"{host.url}/api/{blocker}?seconds=1.5", None, signed_in)
        assert status == 200
        status, body = ticking.result(timeout=20)
    longest_gap = json.loads(body)["longest_gap"]
    if stalled:
        assert longest_gap >= 1.2
    else:
        assert longest_gap < 0.5


def test_the_sync_pool_has_the_python_workers_size() -> None:
    assert worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    assert worker_thread_count({}) == min(32, (os.cpu_count() or 1) + 4)
