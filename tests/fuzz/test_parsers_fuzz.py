"""Cost-guard tags, snooze hours and guest reports from hostile hands: each parser answers or
raises its own refusal; nothing else escapes (one VM's tag must never stop a scan)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.costguard.autostop import classify
from shared.costguard.idle import BadIdleTag, idle_limit
from shared.costguard.idle_probe import BadProbeOutput, parse_probe
from shared.costguard.inventory import VmInfo
from shared.costguard.schedule import BadTag, schedule_from_tags
from shared.costguard.snooze import SnoozeRefused, parse_hours, snoozed_tags
from shared.remote.reports import BadGuestReport, parse_notebook_report
from tests.fuzz.strategies import JSON_VALUES, NASTY_TEXT

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None)
TAG_VALUES = st.one_of(
    NASTY_TEXT,
    st.builds(
        lambda h, m, z: f"{h:02d}:{m:02d} {z}",
        st.integers(-5, 30),
        st.integers(-5, 70),
        st.sampled_from(
            ["UTC", "Europe", "America/Indiana", "Europe/Berlin", "../x", "Etc/GMT+14"]
        ),
    ),
    st.datetimes(timezones=st.none() | st.just(UTC)).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
)
TAGS = st.fixed_dictionaries(
    {"labimage-autostop": TAG_VALUES},
    optional={
        "labimage-autostop-skip-until": TAG_VALUES,
        "labimage-autostop-snooze-until": TAG_VALUES,
        "labimage-idle-minutes": st.one_of(NASTY_TEXT, st.integers().map(str)),
    },
)
NOW = datetime(2024, 1, 15, 18, 30, tzinfo=UTC)


@FUZZ
@given(TAGS, st.integers(1, 12))
def test_tags_parse_or_are_refused_by_name(tags: dict[str, str], hours: int) -> None:
    try:
        schedule = schedule_from_tags(tags)
    except BadTag:
        schedule = None
    if schedule is not None:
        schedule.due_stop(NOW, timedelta(hours=6))
        schedule.upcoming_stop(NOW, timedelta(hours=1))
    try:
        snoozed_tags(tags, hours, NOW)
    except SnoozeRefused as refused:
        assert refused.field
    with contextlib.suppress(BadIdleTag):
        idle_limit(tags, 60)


@FUZZ
@given(st.lists(TAGS, max_size=6))
def test_a_scan_never_raises_whatever_the_tags(all_tags: list[dict[str, str]]) -> None:
    vms = [
        VmInfo(
            f"/subscriptions/s/resourceGroups/rg/providers/x/virtualMachines/v{i}",
            f"v{i}",
            "rg",
            tags,
            "Standard_D2s_v5",
            "running",
        )
        for i, tags in enumerate(all_tags)
    ]
    result, orders = classify(vms, NOW, timedelta(hours=6), timedelta(hours=1))
    assert len(orders) + result.not_due + len(result.problems) <= len(vms) + result.in_scope


@FUZZ
@given(st.one_of(NASTY_TEXT, st.integers().map(str), st.none()))
def test_snooze_hours_parse_or_name_the_field(value: str | None) -> None:
    try:
        assert 1 <= parse_hours(value, 12) <= 12
    except SnoozeRefused as refused:
        assert refused.field == "hours"


def _report_like(value: object) -> str:
    return json.dumps(value)


@FUZZ
@given(
    st.one_of(
        JSON_VALUES.map(_report_like),
        st.fixed_dictionaries(
            {"cpu_percent": JSON_VALUES, "servers": st.lists(JSON_VALUES, max_size=3)}
        ).map(_report_like),
        st.fixed_dictionaries(
            {"notebooks": st.dictionaries(NASTY_TEXT, JSON_VALUES, max_size=3)}
        ).map(_report_like),
        NASTY_TEXT,
    )
)
def test_guest_reports_parse_or_are_refused(text: str) -> None:
    try:
        activity = parse_probe(text)
        assert 0 <= activity.cpu_percent <= 100
    except BadProbeOutput:
        pass
    with contextlib.suppress(BadGuestReport):
        parse_notebook_report(text)
