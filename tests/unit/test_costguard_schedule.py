"""Auto-stop tags and stop arithmetic across time zones, DST changes and missed runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.costguard.schedule import (
    BadTag,
    VmSchedule,
    parse_rule,
    schedule_from_tags,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


@pytest.mark.parametrize(
    "value", ["7pm", "19:00 Mars/Olympus", "25:00", "19:60", "19:00 UTC extra", "", "19.00"]
)
def test_malformed_values_are_refused_with_a_reason(value: str) -> None:
    with pytest.raises(BadTag, match="labimage-autostop"):
        parse_rule(value)


def test_off_and_plain_and_zoned_values() -> None:
    assert parse_rule("off") is None
    assert parse_rule(" OFF ") is None
    assert parse_rule("19:00").describe() == "19:00 UTC"  # type: ignore[union-attr]
    assert parse_rule("19:00 Europe/Berlin").describe() == "19:00 Europe/Berlin"  # type: ignore[union-attr]


def test_a_vm_without_the_tag_is_out_of_scope_and_a_bad_skip_date_is_refused() -> None:
    assert schedule_from_tags({"owner": "x"}) is None
    with pytest.raises(BadTag, match="skip-until"):
        schedule_from_tags({"labimage-autostop": "19:00", "labimage-autostop-skip-until": "soon"})


@pytest.mark.parametrize(
    ("tag", "now", "due"),
    [
        # 19:00 Berlin in winter is 18:00 UTC, in summer 17:00 UTC.
        ("19:00 Europe/Berlin", utc(2024, 1, 15, 17, 59), None),
        ("19:00 Europe/Berlin", utc(2024, 1, 15, 18, 0), utc(2024, 1, 15, 18, 0)),
        ("19:00 Europe/Berlin", utc(2024, 7, 15, 17, 1), utc(2024, 7, 15, 17, 0)),
        # New York: 19:00 EST = 00:00 UTC the next day.
        ("19:00 America/New_York", utc(2024, 1, 16, 0, 5), utc(2024, 1, 16, 0, 0)),
        ("19:00 America/New_York", utc(2024, 1, 15, 23, 0), None),
        # Tokyo: 19:00 JST = 10:00 UTC, no DST.
        ("19:00 Asia/Tokyo", utc(2024, 7, 15, 10, 0), utc(2024, 7, 15, 10, 0)),
        ("19:00", utc(2024, 7, 15, 19, 14), utc(2024, 7, 15, 19, 0)),
    ],
)
def test_due_stop_across_zones(tag: str, now: datetime, due: datetime | None) -> None:
    schedule = schedule_from_tags({"labimage-autostop": tag})
    assert schedule is not None
    assert schedule.due_stop(now) == due


def test_a_stop_time_in_the_spring_forward_gap_fires_right_after_the_gap() -> None:
    # Berlin, 31 March 2024: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 02:30 does not exist.
    schedule = schedule_from_tags({"labimage-autostop": "02:30 Europe/Berlin"})
    assert schedule is not None
    before = schedule.due_stop(utc(2024, 3, 31, 0, 59))
    assert before is None or before < utc(2024, 3, 31)  # at most yesterday's, caught up
    assert schedule.due_stop(utc(2024, 3, 31, 1, 31)) == utc(2024, 3, 31, 1, 30)


def test_an_ambiguous_stop_time_fires_at_its_first_occurrence() -> None:
    # Berlin, 27 October 2024: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    schedule = schedule_from_tags({"labimage-autostop": "02:30 Europe/Berlin"})
    assert schedule is not None
    assert schedule.due_stop(utc(2024, 10, 27, 0, 30)) == utc(2024, 10, 27, 0, 30)  # CEST


def test_the_day_after_a_dst_change_keeps_the_local_time() -> None:
    schedule = schedule_from_tags({"labimage-autostop": "19:00 America/New_York"})
    assert schedule is not None
    # 10 March 2024 is the US spring-forward day: 19:00 EDT = 23:00 UTC (was 00:00 UTC).
    assert schedule.due_stop(utc(2024, 3, 10, 23, 0)) == utc(2024, 3, 10, 23, 0)
    assert schedule.due_stop(utc(2024, 3, 9, 23, 30)) is None  # 18:30 EST the day before


def test_missed_runs_are_caught_up_within_the_window_only() -> None:
    schedule = schedule_from_tags({"labimage-autostop": "23:30 UTC"})
    assert schedule is not None
    # The timer was down from 23:00 to 02:00: the 23:30 stop is still made at 02:00 ...
    assert schedule.due_stop(utc(2024, 5, 2, 2, 0)) == utc(2024, 5, 1, 23, 30)
    # ... but a VM started the next morning is not stopped for last night's time.
    assert schedule.due_stop(utc(2024, 5, 2, 8, 0)) is None
    assert schedule.due_stop(utc(2024, 5, 2, 8, 0), catch_up=timedelta(hours=12)) is not None


def test_skip_until_exempts_up_to_and_including_the_local_date() -> None:
    rule = parse_rule("19:00 Europe/Berlin")
    skipped = VmSchedule(rule, skip_until=date(2024, 1, 15))
    assert skipped.due_stop(utc(2024, 1, 15, 18, 30)) is None
    assert skipped.due_stop(utc(2024, 1, 16, 18, 30)) == utc(2024, 1, 16, 18, 0)


def test_snooze_until_holds_the_stop_back_until_then() -> None:
    rule = parse_rule("19:00")
    snoozed = VmSchedule(rule, snooze_until=utc(2024, 1, 15, 21, 0))
    assert snoozed.due_stop(utc(2024, 1, 15, 20, 59)) is None
    assert snoozed.due_stop(utc(2024, 1, 15, 21, 0)) == utc(2024, 1, 15, 19, 0)


def test_upcoming_stop_for_warnings() -> None:
    schedule = schedule_from_tags({"labimage-autostop": "19:00"})
    assert schedule is not None
    within = timedelta(minutes=30)
    assert schedule.upcoming_stop(utc(2024, 1, 15, 18, 40), within) == utc(2024, 1, 15, 19, 0)
    assert schedule.upcoming_stop(utc(2024, 1, 15, 18, 20), within) is None
