"""Idleness rules with fixed inputs: a running notebook is never idle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.costguard.idle import Activity, BadIdleTag, KernelActivity, idle_limit, judge
from shared.costguard.idle_probe import BadProbeOutput, parse_probe

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=60)


def test_a_busy_kernel_is_never_idle_however_old_the_activity() -> None:
    activity = Activity(
        True, NOW - timedelta(days=2), 0, [KernelActivity("busy", NOW - timedelta(days=2))]
    )
    assert not judge(activity, NOW, LIMIT, None).idle


def test_cpu_use_counts_as_activity() -> None:
    activity = Activity(True, NOW - timedelta(hours=3), cpu_percent=55)
    assert not judge(activity, NOW, LIMIT, None).idle


def test_idle_past_the_limit_is_stopped_and_within_it_is_not() -> None:
    old = Activity(True, NOW - timedelta(minutes=61), 1, [KernelActivity("idle")], 2.0)
    assert judge(old, NOW, LIMIT, None).idle  # an open tab alone does not keep it alive
    recent = Activity(True, NOW - timedelta(minutes=59), 0, [KernelActivity("idle")])
    verdict = judge(recent, NOW, LIMIT, None)
    assert not verdict.idle and verdict.idle_since == NOW - timedelta(minutes=59)


def test_a_kernel_more_recent_than_the_server_counts() -> None:
    activity = Activity(
        True, NOW - timedelta(hours=5), 0, [KernelActivity("idle", NOW - timedelta(minutes=5))]
    )
    assert not judge(activity, NOW, LIMIT, None).idle


def test_without_jupyter_idle_time_starts_at_the_first_idle_probe() -> None:
    nothing = Activity(False)
    first = judge(nothing, NOW, LIMIT, None)
    assert not first.idle and first.idle_since == NOW
    later = judge(nothing, NOW + timedelta(minutes=61), LIMIT, first.idle_since)
    assert later.idle


def test_idle_limit_tags() -> None:
    assert idle_limit({}, 60) == timedelta(minutes=60)
    assert idle_limit({"labimage-idle-minutes": "off"}, 60) is None
    assert idle_limit({"labimage-idle-minutes": "90"}, 60) == timedelta(minutes=90)
    with pytest.raises(BadIdleTag):
        idle_limit({"labimage-idle-minutes": "soon"}, 60)


def test_the_probe_output_is_read_into_activity() -> None:
    output = json.dumps(
        {
            "cpu_percent": 3.5,
            "servers": [
                {
                    "status": {"last_activity": "2024-01-15T10:00:00.000000Z", "connections": 1},
                    "kernels": [
                        {"execution_state": "busy", "last_activity": "2024-01-15T11:59:00Z"}
                    ],
                }
            ],
        }
    )
    activity = parse_probe(output)
    assert activity.jupyter_running and activity.connections == 1
    assert activity.kernels[0].execution_state == "busy"
    assert activity.last_activity == datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    assert not judge(activity, NOW, LIMIT, None).idle


@pytest.mark.parametrize(
    "output",
    [
        '{"servers": [{"status": {"last_activity": "2024-01-15T10:00:00"}}]}',  # no zone
        '{"servers": [{"status": {}, "kernels": "idle"}]}',
        '{"servers": "many"}',
        '{"cpu_percent": "NaN"}',
        '{"cpu_percent": 1e999}',
        '{"servers": [{"status": {"connections": -1}}]}',
        '{"servers": [{"kernels": [{"execution_state": "' + "x" * 100 + '"}]}]}',
        "[" * 10_000,
        "not json",
        '{"servers": [' + ",".join(["{}"] * 500) + "]}",
    ],
)
def test_guest_output_that_is_not_a_bounded_report_is_refused_as_one_problem(
    output: str,
) -> None:
    with pytest.raises(BadProbeOutput):
        parse_probe(output)
