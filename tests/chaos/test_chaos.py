"""The chaos run (python -m localcloud.chaos) as a test: builds under faults end as promised.

The short run is part of `make test`: one build under the short plan's ARM faults, SSH drops,
a git server error and a busy Blob read, with Azurite restarted and a stage message delivered
twice, in about three minutes. The
long runs (`-m chaos_long`, bench/chaos.md) add the Functions host killed mid-invocation (a
message the dead host had taken comes back only when its 10-minute lease ends, or when the
watchdog resends the hop: about ten minutes more per build), out-of-band deletions, and eight
builds at once. Each run brings up and takes down its own localcloud instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "bench" / "chaos-plan.json"
# The bench plan, plus: the first VM action's reply is lost (a capture's deallocate that went
# through), and a fifth of the network writes end Failed.
SHORT_PLAN = Path(__file__).with_name("plan-short.json")

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def chaos(tmp_path: Path, *args: str, timeout_s: float) -> dict[str, Any]:
    """Run the chaos module; on a time-out it is stopped with SIGTERM so it takes its
    instance down, as on Ctrl-C."""
    if os.geteuid() != 0:
        pytest.skip("localcloud needs root (namespaces, loop devices, mounts)")
    out = tmp_path / "chaos.json"
    command = [sys.executable, "-m", "localcloud.chaos", "--out", str(out), *args]
    log = (tmp_path / "chaos.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=600)
        log.close()
    assert proc.returncode == 0, (tmp_path / "chaos.log").read_text()[-4000:]
    return dict(json.loads(out.read_text()))


def assert_nothing_lost_stuck_leaked_or_doubled(result: dict[str, Any]) -> None:
    assert result["stuck"] == 0, result["details"]
    assert result["lost"] == 0, result["details"]
    assert result["duplicated"] == 0, result["details"]
    assert result["leaked_after_sweeper"] == 0, result["leaked_resources"]
    assert result["poison_messages"] == {}


def assert_the_faults_struck(result: dict[str, Any], outside: set[str]) -> None:
    """The faults really happened: ARM calls were refused, every outside fault struck."""
    kinds = {label.split()[0] for label in result["injected"]}
    assert {"throttle", "server_error", "reset", "lro_failed"} <= kinds, result["injected"]
    assert "reset POST Microsoft.Compute/virtualMachines" in result["injected"]
    struck = {s["fault"] for b in result["details"] for s in b["strikes"] if s["done"]}
    assert struck == outside, result["details"]


def test_a_build_survives_arm_faults_ssh_drops_a_storage_restart_and_a_duplicate(
    tmp_path: Path,
) -> None:
    result = chaos(
        tmp_path,
        "--builds=1",
        "--seed=1",
        f"--plan={SHORT_PLAN}",
        "--outside=restart_azurite,duplicate",
        "--timeout=900",
        timeout_s=1500,
    )
    assert result["succeeded"] == 1, result["details"]
    assert_nothing_lost_stuck_leaked_or_doubled(result)
    assert result["leaked_after_cleanup"] == 0, result["leaked_resources"]
    assert_the_faults_struck(result, {"restart_azurite", "duplicate"})
    # The guest's clone met a git server error and its data pull a busy Blob service.
    assert "server_error GIT POST" in result["injected"], result["injected"]
    assert any(label.endswith("BLOB GET") for label in result["injected"]), result["injected"]


@pytest.mark.chaos_long
def test_two_builds_survive_arm_faults_ssh_drops_a_host_kill_and_a_storage_restart(
    tmp_path: Path,
) -> None:
    result = chaos(
        tmp_path,
        "--builds=2",
        "--seed=1",
        f"--plan={SHORT_PLAN}",
        "--outside=kill_host,restart_azurite,duplicate",
        "--timeout=1500",
        timeout_s=2400,
    )
    assert result["succeeded"] == 2, result["details"]
    assert_nothing_lost_stuck_leaked_or_doubled(result)
    assert result["leaked_after_cleanup"] == 0, result["leaked_resources"]
    assert_the_faults_struck(result, {"kill_host", "restart_azurite", "duplicate"})


@pytest.mark.chaos_long
def test_out_of_band_deletions_fail_their_builds_cleanly_and_leave_nothing(
    tmp_path: Path,
) -> None:
    result = chaos(
        tmp_path,
        "--builds=3",
        "--seed=2",
        "--outside=delete_vm,deallocate_vm,delete_image",
        "--one-fault-each",
        "--timeout=1500",
        timeout_s=2400,
    )
    struck = [b for b in result["details"] if any(s["done"] for s in b["strikes"])]
    assert len(struck) == 3, result["details"]
    for build in struck:
        assert build["verdict"] == "failed_cleanly", build
    assert_nothing_lost_stuck_leaked_or_doubled(result)


@pytest.mark.chaos_long
def test_eight_builds_at_once_under_faults(tmp_path: Path) -> None:
    result = chaos(
        tmp_path,
        "--builds=8",
        "--seed=3",
        f"--plan={PLAN}",
        "--outside=kill_host,restart_azurite,duplicate",
        "--baseline",
        "--timeout=3600",
        timeout_s=3 * 3600,
    )
    assert result["succeeded"] >= 0.95 * 8, result["details"]
    assert_nothing_lost_stuck_leaked_or_doubled(result)
