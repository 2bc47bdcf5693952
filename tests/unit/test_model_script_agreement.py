"""One rule in both places: every value the request model accepts passes the guest script's own
check, so a request the API took never fails on the VM for a reason the API could have said."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models.git import check_repository_url
from shared.models.paths import check_mount_point

SCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "remote" / "scripts"


def script_check(script: str, variable: str) -> str:
    """The script's `[[ $<variable> ... ]] || die ...` lines, as bash text."""
    text = (SCRIPTS / script).read_text()
    match = re.search(rf"^\[\[ \${variable}\b.*?\|\| die [^\n]*$", text, re.M | re.S)
    assert match, f"{script} has no check of ${variable}"
    return match.group(0)


def passes(script: str, variable: str, value: str) -> bool:
    program = f'die() {{ echo "$*" >&2; exit 1; }}\n{variable}=$1\n' + script_check(
        script, variable
    )
    ran = subprocess.run(["bash", "-c", program, "check", value], capture_output=True)
    return ran.returncode == 0


def model_accepts(check: object, value: str) -> str | None:
    try:
        return check(value)  # type: ignore[operator,no-any-return]
    except ValueError:
        return None


MOUNT_POINTS = ["/datadrive", "/data/x_1", "/a+b", "/user@x", "/a..b", "/srv/d.d", "/x-", "/"]
URLS = [
    "https://github.com/org/repo.git",
    "HTTPS://github.com/org/repo.git",
    "Https://127.0.0.1:8445/ooi-notebooks.git",
    "https://[::1]:8445/r.git",
]


@pytest.mark.parametrize("value", MOUNT_POINTS)
def test_mount_points_the_model_accepts_pass_mount_disk(value: str) -> None:
    accepted = model_accepts(check_mount_point, value)
    if accepted is not None:
        assert passes("mount_disk.sh", "mount_point", accepted), accepted


@pytest.mark.parametrize("value", URLS)
def test_repository_urls_the_model_accepts_pass_clone_repo(value: str) -> None:
    accepted = model_accepts(check_repository_url, value)
    assert accepted is not None
    assert passes("clone_repo.sh", "url", accepted), accepted


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.from_regex(r"/[A-Za-z0-9._+@/ -]{1,20}", fullmatch=True))
def test_any_mount_point_the_model_accepts_passes_the_script(value: str) -> None:
    accepted = model_accepts(check_mount_point, value)
    if accepted is not None:
        assert passes("mount_disk.sh", "mount_point", accepted), accepted
