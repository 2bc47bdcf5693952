"""Per-stage wall time, stage-hop latency and VM create-to-SSH time of one finished build.

A hop is the time from a stage's final state write to the next stage running: the next stage's
started_at minus the previous stage's finished_at (both stamped by the controller).

    python -m localcloud.demo --keep          # leaves localcloud up after the seed build
    python bench/stage_timings.py             # the newest build on http://127.0.0.1:7071
    python bench/stage_timings.py --build ID --api-url URL
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import urllib.request
from datetime import datetime
from typing import Any


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", default="http://127.0.0.1:7071")
    parser.add_argument("--build", help="build id (default: the newest build)")
    args = parser.parse_args()
    build_id = args.build or get(f"{args.api_url}/api/builds?page_size=1")["builds"][0]["id"]
    status = get(f"{args.api_url}/api/builds/{build_id}")
    stages = status["stages"]
    print(f"build {build_id}: {status['state']}")
    first = stages[0]["started_at"]
    last = stages[-1]["finished_at"]
    for stage in stages:
        took = seconds(stage["started_at"], stage["finished_at"])
        print(f"  {stage['name']:<9} {took:7.2f} s  ({stage['attempts']} invocations)")
    print(f"  whole build {seconds(first, last):7.2f} s (first stage start to cleanup end)")
    hops = [
        seconds(prev["finished_at"], nxt["started_at"]) for prev, nxt in itertools.pairwise(stages)
    ]
    hop_ms = sorted(h * 1000 for h in hops if h is not None)
    if hop_ms:
        print(
            f"stage hops (state written -> next stage running): median "
            f"{statistics.median(hop_ms):.0f} ms, max {max(hop_ms):.0f} ms over {len(hop_ms)}"
        )
    events = status["events"]
    created = next((e["at"] for e in events if e["message"].startswith("creating VM")), None)
    answered = next((e["at"] for e in events if "answers SSH" in e["message"]), None)
    boot = seconds(created, answered)
    if boot is not None:
        print(f"build VM: create call to SSH answering (as the controller saw it): {boot:.2f} s")


if __name__ == "__main__":
    main()
