"""Cost figures: a build's estimated cost so far, and the summary by owner and project.

Every figure is an estimate from the shipped price table (approximate list prices). A VM size
the table does not name makes the figure "unknown", never zero. Hours stopped are estimated:
from each stop to the next stop of the same VM (it must have been started in between), or to
the end of the range, capped at STOPPED_HOURS_CAP per stop, since starts are not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared import telemetry
from shared.costguard.actions import PROBLEM, STOP, CostActions
from shared.costguard.prices import DEFAULT_OS_DISK_GB, PriceTable
from shared.state.record import Build
from shared.state.store import BuildStore

STOPPED_HOURS_CAP = 14.0  # an evening stop to a morning start, roughly
COVERS = "the build's own VM and disks while the build ran; a kept VM's later time is not included"


def stop_saving_estimate(hourly_saved: float | None) -> float | None:
    """The compute cost one stop avoids, for the telemetry metric: the VM's hourly price for
    STOPPED_HOURS_CAP hours (its next start is not known when it stops); None when unknown."""
    return None if hourly_saved is None else round(hourly_saved * STOPPED_HOURS_CAP, 4)


def report_stop(rule_kind: str, hourly_saved: float | None) -> None:
    """The telemetry of one stop by a cost rule: the count, the cost avoided (when the size
    is priced) and the hours avoided (STOPPED_HOURS_CAP, priced or not)."""
    telemetry.vm_stopped(rule_kind, stop_saving_estimate(hourly_saved), STOPPED_HOURS_CAP)


def build_cost(build: Build, prices: PriceTable, now: datetime) -> dict[str, Any]:
    """The `cost` object of a build's status (see shared.models.status.CostEstimate)."""
    vm = build.request.get("vm") or {}
    size = str(vm.get("size") or "")
    os_gb = int(vm.get("os_disk_size_gb") or DEFAULT_OS_DISK_GB)
    data_gb = int((build.request.get("data_disk") or {}).get("size_gb") or 0)
    end = build.updated_at if build.state.terminal else now
    hours = max(0.0, (end - build.created_at).total_seconds() / 3600)
    vm_hourly = prices.vm_per_hour(size)
    disk_hourly = sum(prices.disk_per_hour(gb) or 0.0 for gb in (os_gb, data_gb) if gb)
    amount = None if vm_hourly is None else round((vm_hourly + disk_hourly) * hours, 4)
    return {
        "state": "unknown" if amount is None else "estimated",
        "amount": amount,
        "currency": prices.currency,
        "vm_size": size,
        "vm_hourly": vm_hourly,
        "disk_hourly": round(disk_hourly, 6),
        "hours": round(hours, 3),
        "covers": COVERS,
        "prices_as_of": prices.as_of,
        "note": None if amount is not None else f"VM size {size!r} is not in the price table",
    }


@dataclass
class Line:
    owner: str
    project: str
    builds: int = 0
    unknown_cost_builds: int = 0
    spend_estimate: float = 0.0
    hours_stopped_autostop: float = 0.0
    hours_stopped_idle: float = 0.0
    estimated_saving: float = 0.0
    unknown_saving_stops: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "project": self.project,
            "builds": self.builds,
            "unknown_cost_builds": self.unknown_cost_builds,
            "spend_estimate": round(self.spend_estimate, 2),
            "hours_stopped_autostop": round(self.hours_stopped_autostop, 2),
            "hours_stopped_idle": round(self.hours_stopped_idle, 2),
            "estimated_saving": round(self.estimated_saving, 2),
            "unknown_saving_stops": self.unknown_saving_stops,
        }


@dataclass
class Summary:
    lines: dict[tuple[str, str], Line] = field(default_factory=dict)

    def line(self, owner: str, project: str) -> Line:
        return self.lines.setdefault((owner, project), Line(owner, project))


def all_builds(store: BuildStore) -> Iterator[Build]:
    token: str | None = None
    while True:
        page = store.list(page_size=100, page_token=token)
        yield from page.builds
        if not page.next_token:
            return
        token = page.next_token


def stopped_hours(stops: list[dict[str, Any]], end: datetime) -> list[tuple[dict[str, Any], float]]:
    """Each stop row with its estimated stopped hours (see the module docstring)."""
    by_vm: dict[str, list[dict[str, Any]]] = {}
    for row in stops:
        by_vm.setdefault(str(row.get("VmId", "")).lower(), []).append(row)
    out = []
    for rows in by_vm.values():
        rows.sort(key=lambda r: r["At"])
        for i, row in enumerate(rows):
            until = rows[i + 1]["At"] if i + 1 < len(rows) else end
            hours = max(0.0, (until - row["At"]).total_seconds() / 3600)
            out.append((row, min(hours, STOPPED_HOURS_CAP)))
    return out


def summarise(
    builds: Iterable[Build],
    actions: CostActions,
    prices: PriceTable,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """GET /api/costs: spend, stopped hours and saving by owner and project, and problems."""
    summary = Summary()
    for build in builds:
        if not start <= build.created_at < end:
            continue
        line = summary.line(build.owner, str(build.request.get("project", "")))
        line.builds += 1
        cost = build_cost(build, prices, now)
        if cost["amount"] is None:
            line.unknown_cost_builds += 1
        else:
            line.spend_estimate += float(cost["amount"])
    stops = list(actions.rows(STOP, start, end))
    for row, hours in stopped_hours(stops, min(end, now)):
        line = summary.line(str(row.get("Owner", "")), str(row.get("Project", "")))
        if row.get("Kind") == "idle":
            line.hours_stopped_idle += hours
        else:
            line.hours_stopped_autostop += hours
        hourly = row.get("HourlySaved")
        if isinstance(hourly, int | float):
            line.estimated_saving += hours * float(hourly)
        else:
            line.unknown_saving_stops += 1
    problems = [
        {"vm_id": r.get("VmId", ""), "message": r.get("Message", ""), "at": r["At"].isoformat()}
        for r in actions.rows(PROBLEM, start, end)
    ]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "currency": prices.currency,
        "prices_as_of": prices.as_of,
        "prices_source": prices.source,
        "summary": [summary.lines[k].body() for k in sorted(summary.lines)],
        "problems": sorted(problems, key=lambda p: p["at"]),
        "notes": [
            "All figures are estimates from approximate list prices.",
            f"Spend covers {COVERS}.",
            "Hours stopped run from each stop to the next stop of the same VM or the end of the "
            f"range, at most {STOPPED_HOURS_CAP:g} h per stop (VM starts are not recorded).",
        ],
    }


def default_range(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=30), now
