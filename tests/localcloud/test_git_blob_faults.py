"""GIT and BLOB rules of the fault plan: their keys and validation, and the two layers that apply
them (the git server, following the plan the ARM emulator publishes; the Blob fault layer a
guest's reads pass), seen through real clients: git, and HTTP against a real Azurite."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from localcloud import azurite
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread
from localcloud.faults import (
    FaultInjector,
    FaultPlanError,
    PlanFollower,
    parse_plan,
    plan_file,
)
from tests.local_services import git_server, read_sas


# --- the plan ----------------------------------------------------------------------------------
def test_git_and_blob_rules_reach_only_their_own_calls() -> None:
    plan = parse_plan(
        {
            "rules": [
                {"match": "*", "kind": "throttle"},
                {"match": "GIT *", "kind": "server_error", "status": 500},
                {"match": "BLOB GET", "kind": "reset", "when": "after"},
            ]
        }
    )
    injector = FaultInjector(plan)
    assert injector.decide("GIT POST") == injector.decide("GIT GET")
    git = injector.decide("GIT GET")
    assert git is not None and (git.kind, git.status) == ("server_error", 500)
    blob = injector.decide("BLOB GET")
    assert blob is not None and (blob.kind, blob.when) == ("reset", "after")
    assert injector.decide("BLOB HEAD") is None  # '*' is for ARM and Key Vault calls only
    arm = injector.decide("PUT Microsoft.Compute/virtualMachines")
    assert arm is not None and arm.kind == "throttle"


def test_git_faults_are_the_same_under_the_same_seed() -> None:
    def decisions(seed: int) -> list[bool]:
        rule = {"match": "GIT GET", "rate": 0.3, "kind": "reset"}
        injector = FaultInjector(parse_plan({"seed": seed, "rules": [rule]}))
        return [injector.decide("GIT GET") is not None for _ in range(200)]

    assert decisions(5) == decisions(5) != decisions(6)
    assert 40 <= sum(decisions(5)) <= 80


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        ({"match": "GIT DELETE", "kind": "reset"}, "rules[0].match", "GIT GET, GIT POST"),
        ({"match": "BLOB PUT", "kind": "reset"}, "rules[0].match", "BLOB GET, BLOB HEAD"),
        ({"match": "GIT GET", "kind": "throttle"}, "rules[0].kind", "server_error, reset"),
        ({"match": "BLOB GET", "kind": "lro_failed"}, "rules[0].kind", "throttle"),
        (
            {"match": "BLOB GET", "kind": "throttle", "retryAfter": 2},
            "rules[0].retryAfter",
            "no Retry-After",
        ),
        (
            {"match": "BLOB GET", "kind": "server_error", "when": "after"},
            "rules[0].when",
            "reset",
        ),
    ],
)
def test_a_git_or_blob_rule_that_cannot_apply_is_refused(
    rule: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(FaultPlanError) as refused:
        parse_plan({"rules": [rule]})
    assert str(refused.value).startswith(f"{field}:") and says in str(refused.value)


def test_a_follower_applies_the_published_plan_and_its_tally_reaches_the_report(
    tmp_path: Path,
) -> None:
    path = plan_file(tmp_path)
    owner = FaultInjector(publish_to=path)
    follower = PlanFollower(path, "git")
    assert follower.decide("GIT GET") is None
    owner.replace(parse_plan({"rules": [{"match": "GIT GET", "kind": "reset", "count": 2}]}))
    assert [follower.decide("GIT GET") is not None for _ in range(3)] == [True, True, False]
    assert owner.report()["injected"] == {"reset GIT GET": 2}
    owner.replace(parse_plan({}))  # faults off: the follower stops, the old tally is gone
    assert follower.decide("GIT GET") is None and owner.report()["injected"] == {}


def test_a_plan_given_at_start_is_published_at_once(tmp_path: Path) -> None:
    """`localcloud up --faults PLAN.json`: the emulator starts with the plan, the git server
    (started after it) applies it from its first request."""
    plan = parse_plan({"rules": [{"match": "GIT POST", "kind": "delay", "seconds": 1}]})
    FaultInjector(plan, publish_to=plan_file(tmp_path))
    fault = PlanFollower(plan_file(tmp_path), "git").decide("GIT POST")
    assert fault is not None and (fault.kind, fault.seconds) == ("delay", 1.0)


def test_the_relay_sends_a_routed_port_to_another_host_port() -> None:
    from localcloud.sandbox.relay import route

    assert route("10000") == (10000, 10000)
    assert route("10000:41234") == (10000, 41234)


# --- the git server ----------------------------------------------------------------------------
def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def faulted_git(tmp_path: Path) -> Iterator[tuple[str, RunningEmulator]]:
    """An ARM emulator (which holds the plan) and a git server on the same state folder with
    one bare repository; yields the repository's URL."""
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "analysis.ipynb").write_bytes(os.urandom(200_000))  # a pack worth cutting
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "1", cwd=work)
    git("clone", "-q", "--bare", str(work), str(state / "git" / "notebooks.git"))
    with (
        emulator_in_thread(state, MemoryRunner(), retry_after=0) as (running, _),
        git_server(state, tmp_path / "git.log") as port,
    ):
        yield f"https://127.0.0.1:{port}/notebooks.git", running


def admin(running: RunningEmulator, method: str, body: Any = None) -> dict[str, Any]:
    token = running.issuer.issue("https://management.azure.com")["access_token"]
    reply = requests.request(
        method,
        f"{running.arm_url}/localcloud/faults",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def clone(url: str, running: RunningEmulator, dest: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_TERMINAL_PROMPT": "0", "GIT_SSL_CAINFO": str(running.ca_pem)}
    return subprocess.run(
        ["git", "clone", "-q", url, str(dest)], env=env, capture_output=True, text=True
    )


def test_a_plan_posted_at_run_time_reaches_the_git_server(
    faulted_git: tuple[str, RunningEmulator], tmp_path: Path
) -> None:
    url, running = faulted_git
    admin(running, "POST", {"rules": [{"match": "GIT GET", "kind": "server_error"}]})
    refused = clone(url, running, tmp_path / "a")
    assert refused.returncode != 0 and "503" in refused.stderr
    assert admin(running, "GET")["injected"] == {"server_error GIT GET": 1}

    admin(running, "POST", {"rules": [{"match": "GIT POST", "kind": "reset", "when": "after"}]})
    cut = clone(url, running, tmp_path / "b")
    assert cut.returncode != 0  # the pack was cut mid-transfer
    assert not (tmp_path / "b" / "analysis.ipynb").exists()

    admin(running, "POST", {})
    assert clone(url, running, tmp_path / "c").returncode == 0


# --- the Blob fault layer ----------------------------------------------------------------------
@pytest.fixture
def blob_layer(
    tmp_path: Path, azurite_connection_string: str
) -> Iterator[tuple[RunningEmulator, str, str]]:
    """An emulator whose Blob fault layer fronts Azurite; yields it, the URL of a blob through
    the layer and the same blob's URL straight at Azurite (both with a read SAS)."""
    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.create_container(f"faults{uuid.uuid4().hex[:8]}")
    container.upload_blob("a.csv", b"x,y\n1,2\n" * 1000)
    sas = read_sas(container)
    blob_port = int(container.url.split(":")[2].split("/")[0])
    proxy_port = azurite.free_port()
    direct = f"{container.url}/a.csv?{sas}"
    layered = direct.replace(f":{blob_port}/", f":{proxy_port}/", 1)
    with emulator_in_thread(
        tmp_path, MemoryRunner(), retry_after=0, guest_blob_proxy=(proxy_port, blob_port)
    ) as (running, _):
        yield running, layered, direct
    container.delete_container()


def test_blob_reads_get_storage_errors_and_the_hosts_own_reads_do_not(
    blob_layer: tuple[RunningEmulator, str, str],
) -> None:
    running, layered, direct = blob_layer
    assert requests.get(layered, timeout=10).content == requests.get(direct, timeout=10).content
    admin(
        running,
        "POST",
        {
            "rules": [
                {"match": "BLOB GET", "kind": "throttle", "count": 1},
                {"match": "BLOB GET", "kind": "server_error", "status": 500, "count": 1},
            ]
        },
    )
    busy = requests.get(layered, timeout=10)
    assert busy.status_code == 503 and busy.headers["x-ms-error-code"] == "ServerBusy"
    assert "<Error><Code>ServerBusy</Code>" in busy.text and "Retry-After" not in busy.headers
    assert requests.get(direct, timeout=10).status_code == 200  # not a guest's read
    internal = requests.get(layered, timeout=10)
    assert internal.status_code == 500 and "<Code>InternalError</Code>" in internal.text
    assert requests.get(layered, timeout=10).status_code == 200
    assert admin(running, "GET")["injected"] == {"throttle BLOB GET": 1, "server_error BLOB GET": 1}


def test_a_blob_read_cut_mid_body_ends_short_of_its_length(
    blob_layer: tuple[RunningEmulator, str, str],
) -> None:
    running, layered, _ = blob_layer
    admin(running, "POST", {"rules": [{"match": "BLOB GET", "kind": "reset", "when": "after"}]})
    with requests.get(layered, timeout=10, stream=True) as response:
        assert response.status_code == 200  # the headers came whole
        length = int(response.headers["Content-Length"])
        got = b""
        with pytest.raises(requests.exceptions.RequestException):
            for chunk in response.iter_content(256):  # small reads: a partial one is lost
                got += chunk
    assert 0 < len(got) < length


def test_a_published_plan_with_a_blob_throttle_reaches_the_other_processes_as_it_was() -> None:
    """The emulator publishes the plan it holds for the git server and others to follow; a
    BLOB throttle (Storage's 503 ServerBusy, no Retry-After) must survive that round trip, or
    the followers drop the whole plan."""
    plan = parse_plan(
        {
            "seed": 3,
            "rules": [
                {"match": "GIT POST", "rate": 1, "kind": "server_error", "status": 500},
                {"match": "BLOB GET", "rate": 0.3, "count": 2, "kind": "throttle"},
                {"match": "* Microsoft.*", "rate": 0.1, "kind": "throttle", "retryAfter": 2},
            ],
        }
    )
    again = parse_plan(plan.to_json())
    assert again.to_json() == plan.to_json()
    assert again.rules[2].retry_after == 2
