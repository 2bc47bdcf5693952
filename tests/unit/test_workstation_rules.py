"""The workstations' table of moves and their monthly hours: what a user would see happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.workstations import usage
from shared.workstations.machine import (
    TRANSITIONS,
    WORK_QUEUES,
    IllegalMove,
    WsState,
    WsTrigger,
    next_state,
)
from shared.workstations.record import Usage, Workstation, WsSpec


def ws(monthly_hours: float | None = 10.0, **usage_fields: object) -> Workstation:
    spec = WsSpec(
        image_id="/x", image_source="image_id", size="Standard_D2s_v5", monthly_hours=monthly_hours
    )
    return Workstation(id="wabcdefghi", owner="ada", spec=spec, usage=Usage(**usage_fields))  # type: ignore[arg-type]


def test_the_life_of_a_workstation_follows_the_table() -> None:
    state = WsState.CREATING
    for trigger in (
        WsTrigger.CREATED,
        WsTrigger.VERIFIED,
        WsTrigger.STOP,
        WsTrigger.START,
        WsTrigger.VERIFIED,
        WsTrigger.DELETE,
        WsTrigger.GONE,
    ):
        state = next_state(state, trigger)
    assert state == WsState.DELETED


def test_a_failed_check_leaves_it_stopped_and_a_failed_creation_cleans_up() -> None:
    assert next_state(WsState.VERIFYING, WsTrigger.CHECK_FAILED) == WsState.STOPPED
    assert next_state(WsState.VERIFYING, WsTrigger.FAILED) == WsState.STOPPED
    assert next_state(WsState.CREATING, WsTrigger.FAILED) == WsState.DELETING


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (WsState.STOPPED, WsTrigger.STOP),
        (WsState.RUNNING, WsTrigger.START),
        (WsState.DELETED, WsTrigger.START),
        (WsState.DELETED, WsTrigger.DELETE),
        (WsState.DELETING, WsTrigger.START),
    ],
)
def test_moves_the_table_lacks_are_refused(state: WsState, trigger: WsTrigger) -> None:
    with pytest.raises(IllegalMove, match=f"a {state} workstation cannot {trigger}"):
        next_state(state, trigger)


def test_every_state_with_work_has_a_queue_and_every_state_is_reachable() -> None:
    assert set(WORK_QUEUES) == {WsState.CREATING, WsState.VERIFYING, WsState.DELETING}
    reached = {d for _, _, d in TRANSITIONS} | {WsState.CREATING}
    assert reached == set(WsState)


def test_hours_count_while_running_and_stop_at_the_stop() -> None:
    t0 = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    w = usage.started(ws(), t0)
    assert usage.hours_used(w.usage, t0 + timedelta(hours=2)) == pytest.approx(2.0)
    w = usage.stopped(w, t0 + timedelta(hours=3))
    assert usage.hours_used(w.usage, t0 + timedelta(hours=10)) == pytest.approx(3.0)
    assert usage.quota_left(w, t0 + timedelta(hours=10)) == pytest.approx(7.0)


def test_a_new_month_starts_from_zero_and_lifts_a_reached_quota() -> None:
    late = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    w = usage.started(ws(monthly_hours=1.0), late)
    w = usage.stopped(w, late + timedelta(minutes=59))
    spent = w.model_copy(update={"usage": w.usage.model_copy(update={"quota_reached": True})})
    assert usage.quota_blocks_start(spent, late + timedelta(minutes=59))
    december = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert not usage.quota_blocks_start(spent, december)
    assert usage.hours_used(spent.usage, december) == 0.0
    # A VM running across midnight of the 1st counts from the 1st in the new month.
    running = usage.started(ws(), late)
    assert usage.hours_used(running.usage, december) == pytest.approx(0.5)


def test_without_a_quota_nothing_blocks_and_an_admin_waiver_lifts_it() -> None:
    assert usage.quota_left(ws(monthly_hours=None), datetime.now(UTC)) is None
    now = datetime(2026, 11, 10, tzinfo=UTC)
    waived = ws(month="2026-11", quota_waived=True)
    assert not usage.quota_enforced(waived, now)
    assert usage.quota_enforced(waived, now + timedelta(days=30))  # December: enforced again
