"""Idleness of a kept VM, decided from what the person does: Jupyter's activity and the CPU.

Rules (pure, tested with fixed inputs):
- `labimage-idle-minutes=off` disables idle stop; a number sets the limit; absent: the default.
- A busy kernel (a running notebook cell) means the VM is never idle.
- CPU use above the threshold is activity (a script running outside Jupyter).
- Otherwise the VM has been idle since the latest of Jupyter's last activity (server and
  kernels) and the time it was last seen active; it is stopped once that is older than the limit.
  Open browser connections alone do not keep it alive: a forgotten tab is the usual leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

IDLE_TAG = "labimage-idle-minutes"
MAX_IDLE_MINUTES = 31 * 24 * 60  # a month; larger values are surely typos (and overflow)


class BadIdleTag(ValueError):
    pass


@dataclass(frozen=True)
class KernelActivity:
    execution_state: str  # idle, busy, starting...
    last_activity: datetime | None = None
    connections: int = 0


@dataclass(frozen=True)
class Activity:
    """What one probe saw on the VM."""

    jupyter_running: bool
    last_activity: datetime | None = None  # /api/status last_activity (server-wide)
    connections: int = 0
    kernels: list[KernelActivity] = field(default_factory=list)
    cpu_percent: float = 0.0  # busy share of all CPUs over the sample window


@dataclass(frozen=True)
class IdleVerdict:
    idle: bool  # stop it now
    idle_since: datetime | None  # None: active now
    reason: str


def idle_limit(tags: dict[str, str], default_minutes: int) -> timedelta | None:
    """The VM's idle limit; None when idle stop is off. BadIdleTag for a malformed value."""
    value = tags.get(IDLE_TAG)
    if value is None or not value.strip():
        return timedelta(minutes=default_minutes) if default_minutes > 0 else None
    if value.strip().lower() == "off":
        return None
    try:
        minutes = int(value.strip())
    except ValueError:
        raise BadIdleTag(f"{IDLE_TAG} {value!r} is not a number of minutes or 'off'") from None
    if minutes < 5:
        raise BadIdleTag(f"{IDLE_TAG} {value!r} is below the 5-minute minimum")
    if minutes > MAX_IDLE_MINUTES:
        raise BadIdleTag(f"{IDLE_TAG} {value!r} is above the maximum of {MAX_IDLE_MINUTES}")
    return timedelta(minutes=minutes)


def judge(
    activity: Activity,
    now: datetime,
    limit: timedelta,
    last_seen_active: datetime | None,
    cpu_threshold: float = 10.0,
) -> IdleVerdict:
    """Is the VM idle for longer than `limit`? `last_seen_active` is when an earlier probe last
    found it active (or when idle tracking began), used when Jupyter tells nothing."""
    busy = [k for k in activity.kernels if k.execution_state in ("busy", "starting")]
    if busy:
        return IdleVerdict(False, None, f"{len(busy)} kernel(s) busy: a notebook is running")
    if activity.cpu_percent > cpu_threshold:
        return IdleVerdict(False, None, f"CPU {activity.cpu_percent:.0f}% > {cpu_threshold:.0f}%")
    marks = [activity.last_activity, *(k.last_activity for k in activity.kernels)]
    marks.append(last_seen_active)
    known = [m for m in marks if m is not None]
    if not known:
        return IdleVerdict(False, now, "no activity record yet: idle time starts now")
    since = max(known)
    if since > now:
        since = now
    idle_for = now - since
    if idle_for >= limit:
        minutes = int(idle_for.total_seconds() // 60)
        return IdleVerdict(True, since, f"idle for {minutes} min (limit {limit})")
    return IdleVerdict(False, since, f"idle for {int(idle_for.total_seconds() // 60)} min")
