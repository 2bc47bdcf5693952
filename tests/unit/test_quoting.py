"""Remote commands: hostile values stay single arguments and never execute."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from shared.ssh.quoting import RemoteCommand, quote_argv

HOSTILE = [
    "numpy; rm -rf /",
    "$(touch {marker})",
    "`touch {marker}`",
    "a'b\"c",
    "line1\nline2",
    "--index-url=http://evil",
    "*",
    "x && touch {marker}",
    "",
]


def test_render_adds_sudo_and_remote_time_limit() -> None:
    cmd = RemoteCommand(("uv", "pip", "install", "numpy"), timeout_s=900, sudo=True)
    assert shlex.split(cmd.render()) == [
        "sudo", "-n", "timeout", "-k", "10", "900", "uv", "pip", "install", "numpy",
    ]  # fmt: skip


def test_render_without_sudo_still_has_the_time_limit() -> None:
    assert RemoteCommand(("true",), timeout_s=5).render() == "timeout -k 10 5 true"


def test_hostile_strings_stay_single_arguments_and_never_execute(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    values = [v.format(marker=marker) for v in HOSTILE]
    line = quote_argv(["printf", "%s\\0", *values])
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == values
    assert not marker.exists()


def test_rendered_command_round_trips_through_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    values = tuple(v.format(marker=marker) for v in HOSTILE)
    rendered = RemoteCommand(("printf", "%s\\0", *values), timeout_s=5).render()
    out = subprocess.run(["bash", "-c", rendered], capture_output=True, check=True).stdout
    assert tuple(out.decode().split("\0")[:-1]) == values
    assert not marker.exists()


def test_nul_and_empty_commands_are_refused() -> None:
    with pytest.raises(ValueError):
        quote_argv(["echo", "a\0b"])
    with pytest.raises(ValueError):
        RemoteCommand(())
    with pytest.raises(ValueError):
        RemoteCommand(("true",), timeout_s=0)
