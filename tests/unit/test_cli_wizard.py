"""`labimage init`: a first request from flags or questions, checked with the API's model."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.main import main
from shared.models.parse import parse_build_request

ROOT = Path(__file__).resolve().parents[2]
SEED = json.loads((ROOT / "examples" / "seed-request.json").read_text())
SEED_FLAGS = [
    "--name", "ooi-jupyter", "--owner", "alice@example.org", "--project", "ooi",
    "--tag", "cost-center=oceanography",
    "--package", "jupyterlab>=4", "--package", "numpy>=1.26", "--package", "pandas>=2.1",
    "--package", "xarray>=2024.1", "--package", "matplotlib>=3.8",
    "--data-container", "ooi-data", "--data-prefix", "AT4212/",
    "--data-destination", "/datadrive/data/ooi",
    "--repository", "https://127.0.0.1:8445/ooi-notebooks.git", "--ref", "v1.0",
    "--notebook", "notebooks/*.ipynb", "--image-name", "jupyter-ooi-ubuntu2404",
    "--autostop", "19:00", "--time-zone", "Europe/Berlin",
]  # fmt: skip


def init(*argv: str) -> tuple[int, str]:
    out = Console(file=io.StringIO(), width=200, force_terminal=False)
    err_file = io.StringIO()
    err = Console(file=err_file, width=200, force_terminal=False)
    code = main(["init", *argv], Consoles(out, err))
    return code, err_file.getvalue()


def test_init_with_flags_writes_the_seed_request(tmp_path: Path) -> None:
    output = tmp_path / "request.json"
    code, _ = init(*SEED_FLAGS, "--output", str(output))
    assert code == 0
    assert json.loads(output.read_text()) == SEED
    parse_build_request(output.read_bytes())  # and submit would accept it


def test_packages_come_from_a_requirements_file(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# analysis\nnumpy>=1.26  # arrays\n\npandas>=2.1\n")
    output = tmp_path / "r.json"
    code, _ = init(
        "--name", "ana", "--owner", "a@example.org", "--project", "p",
        "--from-requirements", str(requirements), "--output", str(output),
    )  # fmt: skip
    assert code == 0
    assert json.loads(output.read_text())["python"]["packages"] == ["numpy>=1.26", "pandas>=2.1"]


def test_bad_answers_are_named_by_field_and_nothing_is_written(tmp_path: Path) -> None:
    output = tmp_path / "bad.json"
    flags = list(SEED_FLAGS)
    flags[flags.index("Europe/Berlin")] = "Europe"
    flags[flags.index("ooi-jupyter")] = "Bad Name"
    code, err = init(*flags, "--output", str(output))
    assert code == 2 and "autostop.time_zone" in err and "name" in err
    assert not output.exists()


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    output.write_text("mine\n")
    code, err = init(*SEED_FLAGS, "--output", str(output))
    assert code == 2 and "--force" in err and output.read_text() == "mine\n"


def test_in_a_terminal_the_wizard_asks_and_asks_again_after_a_bad_answer(tmp_path: Path) -> None:
    output = tmp_path / "asked.json"
    answers = iter(
        # name (refused, then good), owner, project, size, packages, data container,
        # repository, image, stop time: defaults; a time zone refused, then a good one
        ["Bad Name", "ooi-first", "alice@example.org", "ooi", "", "numpy>=1.26", "", "", "",
         "", "Europe", "Europe/Berlin"]
    )  # fmt: skip
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labimage_cli.main", "init", "--output", str(output)],
        stdin=follower, stdout=follower, stderr=follower, cwd=ROOT,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(follower)
    seen, fresh, deadline = b"", False, time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            seen, fresh = seen + chunk, True
        elif fresh:  # the program printed and went quiet: it waits for an answer
            os.write(leader, (next(answers, "") + "\n").encode())
            fresh = False
    proc.wait(timeout=30)
    os.close(leader)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    written = json.loads(output.read_text())
    assert written["name"] == "ooi-first" and written["autostop"]["time_zone"] == "Europe/Berlin"
    assert "Europe" in text and text.count("Request name") == 2
