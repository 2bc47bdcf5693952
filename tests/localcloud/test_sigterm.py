"""A test run or a demo stopped with SIGTERM cleans up as Ctrl-C does: fixtures are torn down
and `finally` blocks run, so no localcloud instance is left running behind them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SLOW_TEST = """
import time
import pytest

@pytest.fixture(scope="session")
def instance():
    open({started!r}, "w").close()
    yield
    open({torn_down!r}, "w").close()

def test_waits(instance):
    time.sleep(60)
"""

DEMO_LIKE = """
import time
from localcloud.signals import terminate_like_interrupt
terminate_like_interrupt()
try:
    open({started!r}, "w").close()
    time.sleep(60)
finally:
    open({torn_down!r}, "w").close()
"""


def _stop_when_started(command: list[str], started: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return proc


def test_a_test_run_stopped_with_sigterm_tears_its_fixtures_down(tmp_path: Path) -> None:
    started, torn_down = tmp_path / "started", tmp_path / "torn-down"
    test_file = tmp_path / "test_slow.py"
    test_file.write_text(SLOW_TEST.format(started=str(started), torn_down=str(torn_down)))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "tests.conftest", "--rootdir", str(tmp_path), str(test_file)]
    _stop_when_started(command, started)
    assert torn_down.exists()


def test_a_program_using_terminate_like_interrupt_runs_its_finally_on_sigterm(
    tmp_path: Path,
) -> None:
    started, torn_down = tmp_path / "started", tmp_path / "torn-down"
    script = DEMO_LIKE.format(started=str(started), torn_down=str(torn_down))
    _stop_when_started([sys.executable, "-c", script], started)
    assert torn_down.exists()
