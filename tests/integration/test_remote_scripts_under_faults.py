"""The guest's clone and data scripts against localcloud's git server and Azurite with the fault
plan's GIT and BLOB rules on: a transient failure is tried again and the job succeeds with the
right content; a lasting one fails the job with a sentence naming the repository or the blob.

The scripts run here, as the guest runs them, against the same servers a sandbox VM reaches
through its relay (no VM is needed to see what they do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
)

from localcloud import azurite
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator
from localcloud.arm.testing import emulator_in_thread
from shared.remote import render
from tests.local_services import git_server, read_sas

SCRIPTS = Path(render.__file__).parent / "scripts"


def set_plan(running: RunningEmulator, *rules: dict[str, Any]) -> None:
    token = running.issuer.issue("https://management.azure.com")["access_token"]
    reply = requests.post(
        f"{running.arm_url}/localcloud/faults",
        json={"seed": 1, "rules": list(rules)},
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def injected(running: RunningEmulator) -> dict[str, int]:
    token = running.issuer.issue("https://management.azure.com")["access_token"]
    reply = requests.get(
        f"{running.arm_url}/localcloud/faults",
        headers={"Authorization": f"Bearer {token}"},
        verify=running.ca_pem,
        timeout=30,
    )
    result: dict[str, int] = reply.json()["injected"]
    return result


# --- git ---------------------------------------------------------------------------------------
def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class GitSide:
    def __init__(self, url: str, running: RunningEmulator, commit: str, work: Path) -> None:
        self.url, self.running, self.commit, self.work = url, running, commit, work

    def new_branch(self, name: str) -> str:
        """A branch with one more commit, pushed to the served repository; its commit."""
        git("checkout", "-q", "-b", name, cwd=self.work)
        (self.work / "more.py").write_text("print(1)\n")
        git("add", ".", cwd=self.work)
        git(
            "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", "2", cwd=self.work
        )
        git("push", "-q", "origin", name, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def clone(self, ref: str, dest: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env["GIT_SSL_CAINFO"] = str(self.running.ca_pem)  # the system store, on a guest
        return subprocess.run(
            ["bash", str(SCRIPTS / "clone_repo.sh"), self.url, ref, str(dest)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def git_side(tmp_path: Path) -> Iterator[GitSide]:
    """The ARM emulator (which holds the plan) and the git server over one state folder."""
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "analysis.ipynb").write_bytes(os.urandom(300_000))
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "1", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    git("clone", "-q", "--bare", str(work), str(state / "git" / "notebooks.git"))
    git("remote", "add", "origin", str(state / "git" / "notebooks.git"), cwd=work)
    with (
        emulator_in_thread(state, MemoryRunner(), retry_after=0) as (running, _),
        git_server(state, tmp_path / "git.log") as port,
    ):
        yield GitSide(f"https://127.0.0.1:{port}/notebooks.git", running, commit, work)


@pytest.mark.parametrize(
    "rule",
    [
        {"match": "GIT GET", "kind": "server_error", "status": 500, "count": 2},
        # git (curl) sends a POST again by itself once when its connection dies: two resets
        {"match": "GIT POST", "kind": "reset", "count": 2},
        {"match": "GIT POST", "kind": "reset", "when": "after", "count": 1},
    ],
    ids=["500-twice", "reset", "reset-mid-pack"],
)
def test_a_transient_git_failure_during_the_clone_is_tried_again(
    git_side: GitSide, tmp_path: Path, rule: dict[str, Any]
) -> None:
    set_plan(git_side.running, rule)
    done = git_side.clone("main", tmp_path / "repo")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["commit"] == git_side.commit
    assert (tmp_path / "repo" / "analysis.ipynb").stat().st_size == 300_000
    assert "retrying" in done.stderr
    assert sum(injected(git_side.running).values()) == rule["count"]


def test_a_transient_failure_fetching_into_an_existing_clone_is_tried_again(
    git_side: GitSide, tmp_path: Path
) -> None:
    assert git_side.clone("main", tmp_path / "repo").returncode == 0
    wanted = git_side.new_branch("next")
    set_plan(git_side.running, {"match": "GIT POST", "kind": "server_error", "count": 1})
    done = git_side.clone("next", tmp_path / "repo")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"commit": wanted, "ref": "next", "changed": True}
    assert "fetch from" in done.stderr and "retrying" in done.stderr
    assert (tmp_path / "repo" / "more.py").exists()


def test_a_lasting_git_failure_fails_naming_the_repository(
    git_side: GitSide, tmp_path: Path
) -> None:
    set_plan(git_side.running, {"match": "GIT GET", "kind": "server_error"})
    done = git_side.clone("main", tmp_path / "repo")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"clone_repo: git clone of {git_side.url} failed after 4 attempts")
    assert injected(git_side.running) == {"server_error GIT GET": 4}


def test_no_retry_for_a_missing_ref_or_repository(git_side: GitSide, tmp_path: Path) -> None:
    started = time.monotonic()
    no_ref = git_side.clone("no-such-ref", tmp_path / "a")
    assert no_ref.returncode == 1
    assert no_ref.stderr.strip().endswith(f"ref 'no-such-ref' not found in {git_side.url}")
    missing = GitSide(
        git_side.url.replace("notebooks", "nothing"), git_side.running, "", git_side.work
    )
    no_repo = missing.clone("main", tmp_path / "b")
    assert no_repo.returncode == 1 and f"git clone of {missing.url} failed (" in no_repo.stderr
    assert "retrying" not in no_ref.stderr + no_repo.stderr
    assert time.monotonic() - started < 10  # no backoff was waited


# --- Blob --------------------------------------------------------------------------------------
class BlobSide:
    def __init__(self, running: RunningEmulator, container: ContainerClient, url: str) -> None:
        self.running, self.container, self.url = running, container, url

    def pull(self, tmp_path: Path) -> subprocess.CompletedProcess[str]:
        run = render.pull_data(self.url, str(tmp_path / "data"), prefix="raw/")
        (tmp_path / "params.json").write_bytes(run.files["params.json"])
        return subprocess.run(
            [sys.executable, str(SCRIPTS / "pull_data.py"), "params.json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )


BODY = os.urandom(256 * 1024)


@pytest.fixture
def blob_side(tmp_path: Path, azurite_connection_string: str) -> Iterator[BlobSide]:
    """A container with one blob (its MD5 stored), reached through the Blob fault layer."""
    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.create_container(f"pull{uuid.uuid4().hex[:8]}")
    container.upload_blob(
        "raw/a.bin", BODY, content_settings=ContentSettings(content_type="application/x")
    )
    sas = read_sas(container)
    blob_port = int(container.url.split(":")[2].split("/")[0])
    proxy_port = azurite.free_port()
    url = f"{container.url}?{sas}".replace(f":{blob_port}/", f":{proxy_port}/", 1)
    with emulator_in_thread(
        tmp_path / "state", MemoryRunner(), retry_after=0, guest_blob_proxy=(proxy_port, blob_port)
    ) as (running, _):
        yield BlobSide(running, container, url)
    container.delete_container()


# The list is the script's first Blob read, the download its second: a zero-second delay that
# fires once lets the list through, so the rule after it meets the download.
LIST_PASSES = {"match": "BLOB GET", "kind": "delay", "seconds": 0, "count": 1}


@pytest.mark.parametrize(
    "rule",
    [
        {"match": "BLOB GET", "kind": "reset", "when": "after", "count": 1},
        {"match": "BLOB GET", "kind": "throttle", "count": 1},
    ],
    ids=["cut-mid-body", "server-busy"],
)
def test_a_transient_failure_of_a_download_is_tried_again_and_md5_checked(
    blob_side: BlobSide, tmp_path: Path, rule: dict[str, Any]
) -> None:
    set_plan(blob_side.running, LIST_PASSES, rule)
    done = blob_side.pull(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "a.bin").read_bytes() == BODY
    [entry] = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert entry["md5_verified"] and entry["size"] == len(BODY)
    assert injected(blob_side.running) == {"delay BLOB GET": 1, f"{rule['kind']} BLOB GET": 1}
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".pull-")]


def test_a_listing_cut_mid_body_is_tried_again(blob_side: BlobSide, tmp_path: Path) -> None:
    set_plan(blob_side.running, {"match": "BLOB GET", "kind": "reset", "when": "after", "count": 1})
    done = blob_side.pull(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "a.bin").read_bytes() == BODY


def test_a_lasting_blob_failure_fails_naming_the_blob(blob_side: BlobSide, tmp_path: Path) -> None:
    set_plan(blob_side.running, LIST_PASSES, {"match": "BLOB GET", "kind": "server_error"})
    done = blob_side.pull(tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pull_data: blob raw/a.bin: HTTP 503 ServerBusy from Blob storage")
    assert "Traceback" not in done.stderr and "sig=" not in done.stderr
    assert not (tmp_path / "data" / "a.bin").exists()
