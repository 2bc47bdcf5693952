"""`localcloud up --lro-scale F --lro-seconds TYPE=S`: operation durations for the ARM emulator."""

from __future__ import annotations

import subprocess
import sys

from localcloud.cli import _arm_options, parse_args


def test_duration_flags_reach_the_emulators_command_line() -> None:
    args = parse_args(
        ["up", "--lro-scale", "0.5", "--lro-seconds", "Microsoft.Compute/virtualMachines=3"]
    )
    assert _arm_options(args) == (
        "--lro-scale",
        "0.5",
        "--lro-seconds",
        "Microsoft.Compute/virtualMachines=3",
    )
    assert _arm_options(parse_args(["up"])) == ()  # the emulator's own default applies


def test_the_emulator_refuses_a_malformed_duration() -> None:
    argv = ["--state-dir", "/nonexistent-i8", "--lro-seconds", "virtualMachines"]
    run = subprocess.run(
        [sys.executable, "-m", "localcloud.arm", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "--lro-seconds" in run.stderr and "TYPE=SECONDS" in run.stderr
