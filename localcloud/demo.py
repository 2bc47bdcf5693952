"""`make demo`: the seed request end to end on localcloud, with live progress and a report.

Starts localcloud, prepares the notebook repository and the Blob data the seed request names,
submits examples/seed-request.json through the HTTP API, follows it stage by stage, prints the
result (image id, verification report, per-stage times, connection commands) and tears down.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from localcloud.instance import DEFAULT_STATE_DIR, REPO_ROOT, Layout, read_env_file
from localcloud.seed_content import seed_ooi

SEED = REPO_ROOT / "examples" / "seed-request.json"
TERMINAL = {"succeeded", "failed", "cancelled"}


def api(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def localcloud(command: str, state_dir: Path) -> int:
    return subprocess.call(
        [sys.executable, "-m", "localcloud", command, "--state-dir", str(state_dir)]
    )


def follow(status_url: str, timeout_s: float = 3600) -> dict[str, Any]:
    """Print each stage as it starts and ends, and each new event; return the final status."""
    started = time.monotonic()
    seen_events = 0
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s:
        code, status = api("GET", status_url)
        if code != 200:
            print(f"  status answered {code}: {status}")
            time.sleep(1)
            continue
        for event in status["events"][seen_events:]:
            elapsed = time.monotonic() - started
            print(f"  [{elapsed:6.1f} s] {event['stage']:<9} {event['message']}", flush=True)
        seen_events = len(status["events"])
        last = status
        if status["state"] in TERMINAL:
            return status
        time.sleep(0.5)
    return last


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def report(status: dict[str, Any], wall_s: float) -> None:
    print()
    print(f"build {status['id']}: {status['state']} in {wall_s:.1f} s")
    if status.get("error"):
        print(f"error: {status['error']}")
    print("per-stage wall time:")
    for stage in status["stages"]:
        took = _seconds(stage["started_at"], stage["finished_at"])
        shown = f"{took:7.1f} s" if took is not None else "      -  "
        print(f"  {stage['name']:<9} {shown}  {stage['state']}  ({stage['attempts']} runs)")
    boot = _vm_boot_seconds(status["events"])
    if boot is not None:
        print(f"build VM: create call to SSH answering: {boot:.1f} s")
    print(f"image: {status.get('image_id')}")
    for check in status.get("verification", []):
        ok = "answered" if check["jupyter_ok"] else "did not answer"
        print(f"verification on the {check['vm']} VM: Jupyter {ok}")
        for nb in check["notebooks"]:
            spent = f"{nb['duration_s']:.1f} s" if nb.get("duration_s") is not None else ""
            print(f"  {nb['name']}: {nb['status']} {spent} {nb.get('error') or ''}")
    connection = status.get("connection")
    if connection:
        print("connect to the kept VM:")
        for key, value in connection.items():
            print(f"  {key}: {value}")
    else:
        print("no VM was kept (relaunch.keep_running is false); commands a kept VM would get:")
        print("  ssh -i <key> azureuser@<address>")
        print("  ssh -i <key> -N -L 7005:localhost:8889 azureuser@<address>")


def _vm_boot_seconds(events: list[dict[str, Any]]) -> float | None:
    created = next((e["at"] for e in events if e["message"].startswith("creating VM")), None)
    answered = next((e["at"] for e in events if "answers SSH" in e["message"]), None)
    return _seconds(created, answered)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--keep", action="store_true", help="leave localcloud running afterwards")
    parser.add_argument("--request", type=Path, default=SEED)
    args = parser.parse_args(argv)
    layout = Layout(args.state_dir)
    try:
        if localcloud("up", args.state_dir) != 0:
            print("localcloud did not come up; see the logs under", args.state_dir / "logs")
            return 1
        env = read_env_file(layout)
        assert env is not None
        print("preparing the notebook repository and the Blob data", flush=True)
        seed_ooi(env["settings"]["AzureWebJobsStorage"], args.state_dir / "git")
        base = env["endpoints"]["functions"]
        print(f"submitting {args.request.relative_to(REPO_ROOT)}", flush=True)
        started = time.monotonic()
        code, accepted = api("POST", f"{base}/api/builds", args.request.read_bytes())
        if code != 202:
            print(f"the API refused the request ({code}): {json.dumps(accepted, indent=1)}")
            return 1
        print(f"build {accepted['id']} accepted; following {accepted['status_url']}")
        final = follow(accepted["status_url"])
        report(final, time.monotonic() - started)
        return 0 if final.get("state") == "succeeded" else 1
    finally:
        if not args.keep:
            localcloud("down", args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
