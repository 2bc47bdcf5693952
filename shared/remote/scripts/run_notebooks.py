#!/usr/bin/env python3
"""run_notebooks.py <params.json>: run notebooks headless with nbclient, one report for all.

Run with the environment's python (it needs nbclient, nbformat and ipykernel).
params.json: {"roots": ["/data/notebooks"], "patterns": ["**/*.ipynb"], "timeout_s": 600,
  "kernel": "python3", "report": "report.json"}

Each notebook runs in its own process group with its own time limit, so a hung kernel is killed
with it. The report maps each notebook to status ok|failed|timeout, duration and, for failures,
the failing cell's index, ename, evalue and a traceback tail. Exit 1 when any did not pass.
Each executed notebook, outputs and all (the failing cell's error too), is saved as
executed/<name with '/' as '__'> in the working folder, for the build logs.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

TRACEBACK_TAIL = 1500


def strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


EXECUTED_DIR = "executed"


def execute_one(path: str, kernel: str, timeout_s: int, save_as: str = "") -> dict:
    """Run one notebook in this process; called in the child. With `save_as`, the executed
    notebook is written there whatever the outcome."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    try:
        return _execute(nb, path, kernel, timeout_s)
    finally:
        if save_as:
            try:
                nbformat.write(nb, save_as)
            except OSError as exc:
                print(f"run_notebooks: could not save {save_as}: {exc}", file=sys.stderr)


def _execute(nb: Any, path: str, kernel: str, timeout_s: int) -> dict:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=timeout_s,
        allow_errors=False,
        resources={"metadata": {"path": os.path.dirname(path)}},
    )
    try:
        client.execute()
    except CellTimeoutError:
        return {"status": "timeout"}
    except CellExecutionError as exc:
        index = None
        for i, cell in enumerate(nb.cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                index = i
                break
        return {
            "status": "failed",
            "cell_index": index,
            "ename": exc.ename,
            "evalue": exc.evalue,
            "traceback_tail": strip_ansi(str(exc.traceback))[-TRACEBACK_TAIL:],
        }
    return {"status": "ok", "outputs_sha256": outputs_digest(nb)}


def outputs_digest(nb) -> str:
    """sha256 of what the cells printed and drew (outputs without execution counts or
    metadata), so two runs of a deterministic notebook give the same digest."""
    import hashlib

    kept = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            kept.append(
                {
                    key: output.get(key)
                    for key in ("output_type", "name", "text", "data", "ename", "evalue")
                    if output.get(key) is not None
                }
            )
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def run_isolated(path: str, kernel: str, timeout_s: int, name: str = "") -> dict[str, object]:
    """Run `path` in a child process group, killed as a whole when the time limit passes;
    the executed notebook goes to executed/<name> (see the module docstring)."""
    started = time.monotonic()
    result: dict[str, object]
    save_as = ""
    if name:
        os.makedirs(EXECUTED_DIR, mode=0o700, exist_ok=True)
        save_as = os.path.join(EXECUTED_DIR, name.replace("/", "__"))
    child = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--one",
            path,
            kernel,
            str(timeout_s),
            save_as,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        result = {"status": "timeout"}
    else:
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {
                "status": "failed",
                "cell_index": None,
                "ename": "RunnerError",
                "evalue": f"notebook runner exited {child.returncode}",
                "traceback_tail": err[-TRACEBACK_TAIL:],
            }
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def find_notebooks(roots: list[str], patterns: list[str]) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for root in roots:
        root = os.path.realpath(root)
        for pattern in patterns:
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise SystemExit(f"run_notebooks: pattern {pattern!r} must stay inside the roots")
            for path in glob.glob(os.path.join(root, pattern), recursive=True):
                if path.endswith(".ipynb") and ".ipynb_checkpoints" not in path:
                    found.setdefault(os.path.realpath(path), os.path.relpath(path, root))
    return sorted(((name, path) for path, name in found.items()))


def main() -> int:
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--one":
        save_as = sys.argv[5] if len(sys.argv) == 6 else ""
        print(json.dumps(execute_one(sys.argv[2], sys.argv[3], int(sys.argv[4]), save_as)))
        return 0
    if len(sys.argv) != 2:
        print("usage: run_notebooks.py <params.json>", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        params = json.load(f)
    timeout_s = int(params.get("timeout_s") or 600)
    kernel = params.get("kernel") or "python3"
    notebooks = find_notebooks(params["roots"], params.get("patterns") or ["**/*.ipynb"])
    report: dict = {"notebooks": {}, "passed": 0, "failed": 0}
    for name, path in notebooks:
        print(f"run_notebooks: running {name}", file=sys.stderr)
        result = run_isolated(path, kernel, timeout_s, name)
        report["notebooks"][name] = result
        report["passed" if result["status"] == "ok" else "failed"] += 1
        print(
            f"run_notebooks: {name}: {result['status']} in {result['duration_s']} s",
            file=sys.stderr,
        )
    with open(params.get("report") or "report.json", "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report))
    if not notebooks:
        print("run_notebooks: no notebook matched the patterns", file=sys.stderr)
        return 1
    for name, result in report["notebooks"].items():
        if result["status"] != "ok":
            detail = (
                f"{result.get('ename')}: {result.get('evalue')}"
                if result["status"] == "failed"
                else "time limit"
            )
            print(f"run_notebooks: {name} {result['status']}: {detail}", file=sys.stderr)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
