"""Auto-stop tags and the arithmetic of "is this VM's stop time due now", across time zones.

Tags on a VM:
- `labimage-autostop`: `HH:MM` (UTC), `HH:MM <IANA zone>`, or `off`.
- `labimage-autostop-skip-until`: `YYYY-MM-DD`; no stop on any local date up to and including it.
- `labimage-autostop-snooze-until`: an ISO instant; no stop before it (set by snooze).

A stop is due when the latest local stop time at or before now lies within the catch-up
window: missed timer runs are caught up, but a VM someone starts the next morning is not
stopped for last night's time. Wall times that do not exist (spring forward) fire at the
first instant after the gap; ambiguous ones (fall back) at their first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.azure.naming import AUTOSTOP_TAG
from shared.zones import zone_named

SKIP_TAG = "labimage-autostop-skip-until"
SNOOZE_TAG = "labimage-autostop-snooze-until"
DEFAULT_CATCH_UP = timedelta(hours=6)
# Tag instants must leave room for this much arithmetic (catch-up, snooze, two-day look-ups).
ARITHMETIC_MARGIN = timedelta(days=7)


class BadTag(ValueError):
    """A tag value that cannot be understood; the message says which tag and why."""


@dataclass(frozen=True)
class StopRule:
    at: time
    zone: ZoneInfo

    def describe(self) -> str:
        return f"{self.at.strftime('%H:%M')} {self.zone.key}"

    def stop_on(self, day: date) -> datetime:
        """The UTC instant of the stop on local date `day` (DST gaps and folds resolved)."""
        wall = datetime.combine(day, self.at, tzinfo=self.zone)  # fold=0: first occurrence
        # A wall time inside a spring-forward gap round-trips to a later wall time; zoneinfo
        # then gives the pre-gap offset, which lands after the gap: the first valid instant.
        return wall.astimezone(UTC)

    def last_stop(self, now: datetime) -> datetime:
        """The latest stop instant at or before `now`."""
        today = now.astimezone(self.zone).date()
        for day in (today, today - timedelta(days=1), today - timedelta(days=2)):
            instant = self.stop_on(day)
            if instant <= now:
                return instant
        raise AssertionError("a daily time always occurs within two days")  # pragma: no cover

    def next_stop(self, now: datetime) -> datetime:
        """The first stop instant after `now`."""
        today = now.astimezone(self.zone).date()
        for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
            instant = self.stop_on(day)
            if instant > now:
                return instant
        raise AssertionError("a daily time always occurs within two days")  # pragma: no cover


@dataclass(frozen=True)
class VmSchedule:
    """Everything the tags of one VM say about its evening stop."""

    rule: StopRule | None  # None: `off`
    skip_until: date | None = None
    snooze_until: datetime | None = None

    def due_stop(self, now: datetime, catch_up: timedelta = DEFAULT_CATCH_UP) -> datetime | None:
        """The stop instant that is due now, or None when no stop is due."""
        if self.rule is None:
            return None
        stop = self.rule.last_stop(now)
        if now - stop > catch_up:
            return None
        if (
            self.skip_until is not None
            and stop.astimezone(self.rule.zone).date() <= self.skip_until
        ):
            return None
        if self.snooze_until is not None and now < self.snooze_until:
            return None
        return stop

    def upcoming_stop(self, now: datetime, within: timedelta) -> datetime | None:
        """The next stop if it comes within `within` and nothing exempts it (for warnings)."""
        if self.rule is None:
            return None
        stop = self.rule.next_stop(now)
        if stop - now > within:
            return None
        if (
            self.skip_until is not None
            and stop.astimezone(self.rule.zone).date() <= self.skip_until
        ):
            return None
        if self.snooze_until is not None and stop < self.snooze_until:
            return None
        return stop


def parse_rule(value: str, default_zone: str = "UTC") -> StopRule | None:
    """The rule a tag value states; None for `off`; BadTag with a reason for anything else."""
    parts = value.strip().split()
    if len(parts) == 1 and parts[0].lower() == "off":
        return None
    if not 1 <= len(parts) <= 2:
        raise BadTag(f"{AUTOSTOP_TAG} {value!r} is not 'HH:MM', 'HH:MM <time zone>' or 'off'")
    text = parts[0]
    try:
        if len(text) != 5 or text[2] != ":":
            raise ValueError
        at = time(int(text[:2]), int(text[3:]))
    except ValueError:
        raise BadTag(f"{AUTOSTOP_TAG} {text!r} is not a time of day (HH:MM)") from None
    zone_name = parts[1] if len(parts) == 2 else default_zone
    zone = zone_named(zone_name)
    if zone is None:
        raise BadTag(f"{AUTOSTOP_TAG} zone {zone_name!r} is not a known time zone")
    return StopRule(at, zone)


def parse_skip(value: str | None) -> date | None:
    if not value or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadTag(f"{SKIP_TAG} {value!r} is not a date (YYYY-MM-DD)") from None


def parse_snooze(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        instant = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadTag(f"{SNOOZE_TAG} {value!r} is not an ISO date and time") from None
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    try:  # near year 1 or 9999 the arithmetic of a stop (days either side) overflows
        instant.astimezone(UTC) + ARITHMETIC_MARGIN
        instant.astimezone(UTC) - ARITHMETIC_MARGIN
    except OverflowError:
        raise BadTag(f"{SNOOZE_TAG} {value!r} is too far from today") from None
    return instant


def schedule_from_tags(tags: dict[str, str]) -> VmSchedule | None:
    """The VM's schedule; None when it has no auto-stop tag (out of scope). BadTag if malformed."""
    if AUTOSTOP_TAG not in tags:
        return None
    return VmSchedule(
        rule=parse_rule(tags[AUTOSTOP_TAG]),
        skip_until=parse_skip(tags.get(SKIP_TAG)),
        snooze_until=parse_snooze(tags.get(SNOOZE_TAG)),
    )
