"""Snooze: postpone a VM's evening stop by N hours, within the configured maximum.

The stop instant moves to N hours after the later of now and today's stop time: when that
crosses the VM's local midnight, the skip tag is set for today (the stop comes back tomorrow);
otherwise the snooze tag holds the new instant. The VM's own stop time is left as it was, so
a snooze never changes tomorrow. Tags are changed through the Tags API (shared/azure/tags.py):
in an extra auto-stop group the controller holds only the VM stopper role, which may tag VMs
(`Microsoft.Resources/tags/write`) but not write them, so a VM PATCH would be refused there.
The Tags API takes no If-Match: its merge and delete touch only the two snooze tags, so the
one change that can be lost is a snooze racing another snooze of the same VM. Giving the
stopper role `virtualMachines/write` for an ETag would let it resize or re-image any VM in
those groups; least privilege wins over the ETag here.

Who may snooze which VM is asked before anything is written (`may_snooze`): a VM the caller
may not touch answers exactly as a VM that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients
from shared.azure.tags import change_tags
from shared.costguard.schedule import (
    SKIP_TAG,
    SNOOZE_TAG,
    BadTag,
    VmSchedule,
    schedule_from_tags,
)


class SnoozeRefused(ValueError):
    """Bad input; `field` names what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NoSuchVm(LookupError):
    pass


@dataclass(frozen=True)
class Snoozed:
    vm_id: str
    stop_at: datetime | None  # None: no stop today (skip tag set)
    tags: dict[str, str]


def parse_hours(value: str | None, maximum: int) -> int:
    if value is None or not value.strip():
        raise SnoozeRefused("hours", "hours is required: a whole number of hours")
    try:
        hours = int(value.strip())
    except ValueError:
        raise SnoozeRefused("hours", f"hours must be a whole number, not {value!r}") from None
    if not 1 <= hours <= maximum:
        raise SnoozeRefused("hours", f"hours must be 1 to {maximum}")
    return hours


def _schedule(tags: dict[str, str], what: str) -> VmSchedule:
    """The VM's schedule; SnoozeRefused when its tag is malformed or it has no stop time."""
    try:
        schedule = schedule_from_tags(tags)
    except BadTag as exc:
        raise SnoozeRefused("labimage-autostop", str(exc)) from None
    if schedule is None or schedule.rule is None:
        raise SnoozeRefused("labimage-autostop", f"the VM has no auto-stop time to {what}")
    return schedule


def snoozed_tags(
    tags: dict[str, str], hours: int, now: datetime
) -> tuple[dict[str, str], datetime | None]:
    """The VM's new tags and the new stop instant (None when today is skipped). Pure."""
    schedule = _schedule(tags, "snooze")
    rule = schedule.rule
    assert rule is not None  # _schedule refuses a VM without one
    today_stop = rule.stop_on(now.astimezone(rule.zone).date())
    base = max(now, today_stop, schedule.snooze_until or now)
    new_stop = base + timedelta(hours=hours)
    if new_stop.microsecond:  # whole seconds, as the tag says it, and never early
        new_stop = new_stop.replace(microsecond=0) + timedelta(seconds=1)
    local_day = now.astimezone(rule.zone).date()
    new = dict(tags)
    if new_stop.astimezone(rule.zone).date() > local_day:
        new[SKIP_TAG] = local_day.isoformat()
        new.pop(SNOOZE_TAG, None)
        return new, None
    new[SNOOZE_TAG] = new_stop.isoformat()
    return new, new_stop


def snooze(
    azure: AzureClients,
    group: str,
    name: str,
    hours: int,
    now: datetime,
    may_snooze: Callable[[dict[str, str]], bool],
) -> Snoozed:
    """Apply a snooze to the VM; NoSuchVm (also for a VM `may_snooze` refuses by its tags),
    SnoozeRefused, or the ARM error kinds."""
    with arm_call(f"read VM {group}/{name}"):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            vm = azure.compute.virtual_machines.get(group, name)
        except ResourceNotFoundError:
            raise NoSuchVm(f"{group}/{name}") from None
    before = dict(vm.tags or {})
    if not may_snooze(before):
        raise NoSuchVm(f"{group}/{name}")
    tags, stop_at = snoozed_tags(before, hours, now) if hours else skipped_tags(before, now)
    change_tags(azure, str(vm.id), before, tags)
    return Snoozed(str(vm.id), stop_at, tags)


def skip_today(
    azure: AzureClients,
    group: str,
    name: str,
    now: datetime,
    may_snooze: Callable[[dict[str, str]], bool],
) -> Snoozed:
    """No stop today (the VM's local day): the skip tag; tomorrow's stop stands."""
    return snooze(azure, group, name, 0, now, may_snooze)


def skipped_tags(tags: dict[str, str], now: datetime) -> tuple[dict[str, str], None]:
    """The VM's tags with today's stop skipped. Pure."""
    rule = _schedule(tags, "skip").rule
    assert rule is not None  # _schedule refuses a VM without one
    new = dict(tags)
    new[SKIP_TAG] = now.astimezone(rule.zone).date().isoformat()
    new.pop(SNOOZE_TAG, None)
    return new, None
