"""Running hours per calendar month (UTC): what the quota counts and the costs report.

An interval that spans a month boundary counts from the first of the month; hours of an earlier
month are forgotten when the month turns, and so is a reached quota.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.workstations.record import Usage, Workstation


def month_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def _month_start(now: datetime) -> datetime:
    utc = now.astimezone(UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def current(usage: Usage, now: datetime) -> Usage:
    """The usage as of `now`'s month: a new month starts at zero (an open interval goes on)."""
    if usage.month == month_of(now):
        return usage
    return Usage(month=month_of(now), hours=0.0, running_since=usage.running_since)


def hours_used(usage: Usage, now: datetime) -> float:
    """Hours of this month, the open interval included."""
    usage = current(usage, now)
    hours = usage.hours
    if usage.running_since is not None:
        since = max(usage.running_since, _month_start(now))
        hours += max(0.0, (now - since).total_seconds() / 3600)
    return hours


def started(ws: Workstation, now: datetime) -> Workstation:
    """The VM began to run (counted from now unless it was already counting)."""
    usage = current(ws.usage, now)
    if usage.running_since is None:
        usage = usage.model_copy(update={"running_since": now})
    return ws.model_copy(update={"usage": usage})


def stopped(ws: Workstation, now: datetime) -> Workstation:
    """The VM stopped: the open interval is closed into this month's hours."""
    usage = current(ws.usage, now)
    closed = usage.model_copy(update={"hours": hours_used(usage, now), "running_since": None})
    return ws.model_copy(update={"usage": closed})


def quota_left(ws: Workstation, now: datetime) -> float | None:
    """Hours left this month; None without a quota."""
    if ws.spec.monthly_hours is None:
        return None
    return ws.spec.monthly_hours - hours_used(ws.usage, now)


def quota_enforced(ws: Workstation, now: datetime) -> bool:
    """The quota applies now: there is one and no administrator waived it this month."""
    return ws.spec.monthly_hours is not None and not current(ws.usage, now).quota_waived


def quota_blocks_start(ws: Workstation, now: datetime) -> bool:
    """This month's quota is spent (or was reached and the month has not turned)."""
    left = quota_left(ws, now)
    if left is None:
        return False
    usage = current(ws.usage, now)
    return usage.quota_reached or left <= 0
