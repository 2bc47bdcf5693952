"""The local git server serves bare repositories read-only over HTTPS with the localcloud CA."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import azurite

REPO = Path(__file__).resolve().parents[2]


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A git server on a free port over a state folder with one bare repository."""
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "analysis.ipynb").write_text("{}\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "one", cwd=work)
    git("clone", "-q", "--bare", str(work), str(state / "git" / "notebooks.git"))
    port = azurite.free_port()
    log = tmp_path / "gitserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.gitserver",
                "--state-dir",
                str(state),
                "--port",
                str(port),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        azurite.wait_for_ports([port], proc)
        yield f"https://127.0.0.1:{port}", state
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "GIT_TERMINAL_PROMPT": "0", **extra}


def test_clone_works_with_the_ca_and_fails_without_it(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, state = server
    ca = state / "arm" / "ca.pem"
    assert ca.exists()
    trusted = _clean_env(GIT_SSL_CAINFO=str(ca))
    git("clone", "-q", f"{url}/notebooks.git", str(tmp_path / "a"), env=trusted)
    assert (tmp_path / "a" / "analysis.ipynb").read_text() == "{}\n"
    with pytest.raises(AssertionError, match="certificate"):
        git("clone", "-q", f"{url}/notebooks.git", str(tmp_path / "b"), env=_clean_env())


def test_a_pinned_commit_can_be_fetched_shallow(server: tuple[str, Path], tmp_path: Path) -> None:
    url, state = server
    env = _clean_env(GIT_SSL_CAINFO=str(state / "arm" / "ca.pem"))
    head = git("rev-parse", "HEAD", cwd=state / "git" / "notebooks.git")
    target = tmp_path / "pinned"
    git("init", "-q", str(target))
    git("fetch", "-q", "--depth", "1", f"{url}/notebooks.git", head, cwd=target, env=env)
    git("checkout", "-q", head, cwd=target, env=env)
    assert (target / "analysis.ipynb").exists()


def test_pushes_are_refused(server: tuple[str, Path], tmp_path: Path) -> None:
    url, state = server
    env = _clean_env(GIT_SSL_CAINFO=str(state / "arm" / "ca.pem"))
    git("clone", "-q", f"{url}/notebooks.git", str(tmp_path / "c"), env=env)
    (tmp_path / "c" / "new.txt").write_text("x")
    git("add", ".", cwd=tmp_path / "c")
    git(
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "-qm",
        "two",
        cwd=tmp_path / "c",
    )
    with pytest.raises(AssertionError):
        git("push", "-q", "origin", "main", cwd=tmp_path / "c", env=env)
