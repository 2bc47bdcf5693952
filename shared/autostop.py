"""Evening auto-stop: which VMs are past their stop time today, and deallocating them.

A VM is in scope when it carries `labimage-autostop` = `HH:MM`, `HH:MM <IANA zone>` or `off`.
`labimage-autostop-skip-until=<YYYY-MM-DD>` exempts it up to and including that date (local).
Stopping means deallocate: a VM that is only powered off still bills for compute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.azure import vms
from shared.azure.clients import AzureClients
from shared.azure.naming import AUTOSTOP_TAG
from shared.errors import StepError

logger = logging.getLogger(__name__)

SKIP_TAG = "labimage-autostop-skip-until"


class BadTag(ValueError):
    pass


@dataclass(frozen=True)
class StopRule:
    at: time
    zone: ZoneInfo

    def due(self, now: datetime, skip_until: date | None = None) -> bool:
        """True when today's local stop time has passed (catching up on missed runs)."""
        local = now.astimezone(self.zone)
        if skip_until is not None and local.date() <= skip_until:
            return False
        return local.time() >= self.at


def parse_rule(value: str, default_zone: str = "UTC") -> StopRule | None:
    """The rule a tag value states; None for `off`; BadTag with a reason for anything else."""
    parts = value.strip().split()
    if len(parts) == 1 and parts[0].lower() == "off":
        return None
    if not 1 <= len(parts) <= 2:
        raise BadTag(f"{value!r} is not 'HH:MM', 'HH:MM <time zone>' or 'off'")
    try:
        at = time.fromisoformat(parts[0])
    except ValueError:
        raise BadTag(f"{parts[0]!r} is not a time of day (HH:MM)") from None
    zone_name = parts[1] if len(parts) == 2 else default_zone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTag(f"{zone_name!r} is not a known time zone") from None
    return StopRule(at, zone)


def parse_skip(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadTag(f"{SKIP_TAG} {value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class AutostopResult:
    stopped: list[str]
    skipped: list[str]
    problems: list[str]


def run_autostop(azure: AzureClients, groups: tuple[str, ...], now: datetime) -> AutostopResult:
    """Deallocate every running, tagged VM in `groups` whose stop time has passed today."""
    stopped: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []
    for group in groups:
        for vm in azure.compute.virtual_machines.list(group):
            tags = vm.tags or {}
            if AUTOSTOP_TAG not in tags:
                continue
            name = str(vm.name)
            try:
                rule = parse_rule(tags[AUTOSTOP_TAG])
                skip = parse_skip(tags.get(SKIP_TAG))
            except BadTag as exc:
                problems.append(f"{group}/{name}: {exc}")
                continue
            if rule is None or not rule.due(now, skip):
                skipped.append(name)
                continue
            try:
                if vms.vm_state(azure, name, group).power != "running":
                    continue
                vms.begin_deallocate(azure, name, group)
            except StepError as exc:
                problems.append(f"{group}/{name}: {exc}")
                continue
            stopped.append(name)
            logger.info("auto-stop: deallocating %s/%s (%s)", group, name, tags[AUTOSTOP_TAG])
    return AutostopResult(stopped, skipped, problems)
