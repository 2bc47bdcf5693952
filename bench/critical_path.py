"""Where one finished build's wall time went: guest jobs, Resource Manager, SSH, and the
controller's own share.

Reads the build's record (stages, started/finished) through the API and the span timings the
controller wrote to `LABIMAGE_SPANS_FILE` (one JSON line per ARM call, SSH connect or command,
stage invocation, and one per guest job with the guest's start and end and when the controller
noticed it). Busy time is the union of ARM calls, SSH work and guest jobs; the controller's
share is the rest of the build's wall time: time when nothing the build waits for was running
and the build had not moved on yet (poll slack, fixed sleeps, hops between stages and between
a stage's invocations, the controller's own processing). ARM calls include the client's own
polling, so the slack of an operation polled at its Retry-After counts as ARM time.

    python -m localcloud up --state-dir S --setting LABIMAGE_SPANS_FILE=S/spans.jsonl ...
    python bench/critical_path.py --state-dir S --spans S/spans.jsonl [--build ID]
    python bench/critical_path.py --state-dir S --spans S/spans.jsonl --submit REQUEST.json

`--submit` sends the request file(s) one after another (each waits for the previous to end)
and reports each; `--json` writes the figures as JSON too. `--prepare MB` first puts the
figures' inputs into the instance and writes their request files next to the spans file:
two data sources of MB megabytes each (random bytes under ooi-data/bench-a/, which also holds
the table the seed notebook reads, and bench-b/) and a second repository (for `overlap.json`),
a copy of the seed data under another prefix (for `weekly-2.json`, the rebuild with only the
data changed after `weekly-1.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from labimage_cli.client import ApiClient
from localcloud.funchost.hostkeys import read_host_keys
from localcloud.instance import Layout, read_env_file

Interval = tuple[float, float]
REPO = Path(__file__).resolve().parent.parent


def union_length(intervals: Iterable[Interval], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by at least one interval."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in clipped:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclass
class StageFigures:
    name: str
    wall_s: float
    invocations: int = 0
    jobs_s: float = 0.0  # union of guest jobs
    job_count: int = 0
    arm_s: float = 0.0  # union of ARM calls
    arm_calls: int = 0
    ssh_connect_s: float = 0.0
    ssh_connects: int = 0
    ssh_s: float = 0.0  # union of SSH commands and uploads
    busy_s: float = 0.0
    poll_slack_s: float = 0.0  # guest jobs: ended -> noticed
    controller_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def analyse(status: dict[str, Any], spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The critical-path figures of one finished build."""
    mine = [s for s in spans if s.get("build_id") == status["id"]]
    rows: list[StageFigures] = []
    windows: list[Interval] = []
    for stage in status["stages"]:
        start, end = epoch(stage.get("started_at")), epoch(stage.get("finished_at"))
        if start is None or end is None:
            continue
        windows.append((start, end))
        rows.append(_stage_figures(stage["name"], start, end, mine))
    first, last = windows[0][0], windows[-1][1]
    wall = last - first
    hops = wall - sum(b - a for a, b in windows)
    whole = StageFigures("whole", wall)
    for row in rows:
        for name in (
            "invocations",
            "jobs_s",
            "job_count",
            "arm_s",
            "arm_calls",
            "ssh_connect_s",
            "ssh_connects",
            "ssh_s",
            "busy_s",
            "poll_slack_s",
            "controller_s",
        ):
            setattr(whole, name, getattr(whole, name) + getattr(row, name))
    whole.controller_s += hops
    return {
        "build": status["id"],
        "state": status["state"],
        "request": status.get("name") or status.get("request", {}).get("name"),
        "wall_s": round(wall, 2),
        "hops_between_stages_s": round(hops, 2),
        "controller_share": round(whole.controller_s / wall, 4) if wall else None,
        "stages": [_rounded(row) for row in [*rows, whole]],
    }


def _stage_figures(
    name: str, start: float, end: float, spans: list[dict[str, Any]]
) -> StageFigures:
    inside = [s for s in spans if s["end"] > start and s["start"] < end]
    row = StageFigures(name, end - start)

    def of(prefix: str) -> list[dict[str, Any]]:
        return [s for s in inside if s["name"].startswith(prefix)]

    row.invocations = len(of("stage "))
    jobs, arm = of("job "), of("arm ")
    connects = of("ssh connect ")
    ssh = [s for s in of("ssh ") if s not in connects]
    row.job_count, row.arm_calls, row.ssh_connects = len(jobs), len(arm), len(connects)
    spans_of = {
        "jobs": [(s["start"], s["end"]) for s in jobs],
        "arm": [(s["start"], s["end"]) for s in arm],
        "connect": [(s["start"], s["end"]) for s in connects],
        "ssh": [(s["start"], s["end"]) for s in ssh],
    }
    row.jobs_s = union_length(spans_of["jobs"], start, end)
    row.arm_s = union_length(spans_of["arm"], start, end)
    row.ssh_connect_s = union_length(spans_of["connect"], start, end)
    row.ssh_s = union_length(spans_of["ssh"], start, end)
    busy = [i for group in spans_of.values() for i in group]
    row.busy_s = union_length(busy, start, end)
    row.poll_slack_s = sum(max(0.0, s.get("noticed", s["end"]) - s["end"]) for s in jobs)
    row.controller_s = row.wall_s - row.busy_s
    return row


def _rounded(row: StageFigures) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.__dict__.items():
        out[key] = round(value, 2) if isinstance(value, float) else value
    out["controller_share"] = round(row.controller_s / row.wall_s, 4) if row.wall_s else None
    return out


def print_report(report: dict[str, Any]) -> None:
    print(
        f"build {report['build']} ({report['request']}): {report['state']}, "
        f"wall {report['wall_s']:.1f} s, controller share {100 * report['controller_share']:.2f} %"
    )
    header = (
        f"  {'stage':<9} {'wall':>7} {'inv':>4} {'jobs':>7} {'arm':>7} {'#arm':>5} "
        f"{'connect':>8} {'#conn':>5} {'ssh':>6} {'slack':>6} {'ctrl':>6} {'ctrl%':>6}"
    )
    print(header)
    for row in report["stages"]:
        share = row["controller_share"]
        print(
            f"  {row['name']:<9} {row['wall_s']:7.1f} {row['invocations']:4d} {row['jobs_s']:7.1f} "
            f"{row['arm_s']:7.1f} {row['arm_calls']:5d} {row['ssh_connect_s']:8.2f} "
            f"{row['ssh_connects']:5d} {row['ssh_s']:6.1f} {row['poll_slack_s']:6.2f} "
            f"{row['controller_s']:6.2f} {100 * share if share is not None else 0:5.1f}%"
        )
    print(f"  (hops between stages: {report['hops_between_stages_s']:.2f} s, in 'whole' ctrl)")


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def client_for(state_dir: Path) -> ApiClient:
    layout = Layout(state_dir)
    env = read_env_file(layout)
    if env is None:
        sys.exit(f"no localcloud instance at {state_dir}")
    key = read_host_keys(layout.funchost_dir)["default"]
    return ApiClient(env["endpoints"]["functions"], function_key=key)


def wait_for(client: ApiClient, build_id: str, timeout_s: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.status(build_id)
        if status["state"] in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(1)
    raise TimeoutError(f"build {build_id} did not end in {timeout_s} s")


PART_BYTES = 32 << 20


def prepare(state_dir: Path, out_dir: Path, megabytes: int) -> None:
    """The figures' data, repository and request files (see the module docstring)."""
    from localcloud.seed_content import OOI_CSV, make_repository, ooi_csv, seed_ooi, upload_data

    env = read_env_file(Layout(state_dir))
    assert env is not None
    connection = env["settings"]["AzureWebJobsStorage"]
    git_port = env["endpoints"]["git"].rsplit(":", 1)[1]
    seed_ooi(connection, state_dir / "git")
    make_repository(
        state_dir / "git", "ooi-extra.git", {"README.md": "more notebooks to come\n"}, "v1.0"
    )
    for prefix in ("bench-a", "bench-b"):
        left = megabytes << 20
        part = 0
        while left > 0:
            size = min(PART_BYTES, left)
            upload_data(connection, "ooi-data", {f"{prefix}/part-{part:03d}.bin": os.urandom(size)})
            left -= size
            part += 1
    # The seed notebook reads the OOI table from /datadrive/data/ooi: bench-a lands there too.
    upload_data(connection, "ooi-data", {f"AT4213/{OOI_CSV}": ooi_csv()})
    upload_data(connection, "ooi-data", {f"bench-a/{OOI_CSV}": ooi_csv()})
    seed = json.loads((REPO / "examples" / "seed-request.json").read_text())
    for repo in seed["repositories"]:
        repo["url"] = repo["url"].replace(":8445/", f":{git_port}/")
    stamp = uuid.uuid4().hex[:6]

    def write(file: str, **changes: Any) -> None:
        request = {**json.loads(json.dumps(seed)), **changes}
        request["image"] = {"name": f"bench-{file}-{stamp}"}
        (out_dir / f"{file}.json").write_text(json.dumps(request, indent=2) + "\n")

    write("seed")
    write(
        "overlap",
        name="ooi-overlap",
        data=[
            {"container": "ooi-data", "prefix": "bench-a/", "destination": "/datadrive/data/ooi"},
            {"container": "ooi-data", "prefix": "bench-b/", "destination": "/datadrive/data/b"},
        ],
        repositories=[
            *seed["repositories"],
            {
                "url": seed["repositories"][0]["url"].replace("ooi-notebooks", "ooi-extra"),
                "ref": "v1.0",
                "destination": "/datadrive/extra",
            },
        ],
    )
    weekly = {"name": f"ooi-weekly-{stamp}", "rebuild": "auto"}
    write("weekly-1", **weekly)
    changed = [{**seed["data"][0], "prefix": "AT4213/"}]
    write("weekly-2", **weekly, data=changed)
    print(f"request files in {out_dir}: seed, overlap, weekly-1, weekly-2 (.json)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--spans", type=Path, required=True)
    parser.add_argument("--build", action="append", default=[], help="build id (repeatable)")
    parser.add_argument("--submit", action="append", default=[], type=Path, help="request file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--prepare", type=int, metavar="MB", help="make the figures' inputs first")
    args = parser.parse_args()
    if args.prepare is not None:
        prepare(args.state_dir, args.spans.parent, args.prepare)
        if not args.submit and not args.build:
            return
    client = client_for(args.state_dir)
    builds = list(args.build)
    for request in args.submit:
        accepted = client.submit(request.read_bytes(), str(uuid.uuid4()))
        print(f"submitted {request} as {accepted['id']}", flush=True)
        final = wait_for(client, accepted["id"])
        print(f"  {accepted['id']} {final['state']}", flush=True)
        builds.append(accepted["id"])
    if not builds:
        builds = [client.list_page(page_size=1)["builds"][0]["id"]]
    time.sleep(1)  # the last spans are appended as the last invocation returns
    spans = read_spans(args.spans)
    reports = []
    for build_id in builds:
        report = analyse(client.status(build_id), spans)
        print_report(report)
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
