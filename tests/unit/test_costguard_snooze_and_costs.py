"""Snooze tag arithmetic, and cost figures from the shipped price table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.costguard.costs import build_cost, stopped_hours
from shared.costguard.prices import default_prices
from shared.costguard.snooze import SnoozeRefused, parse_hours, snoozed_tags
from shared.state.record import Build, BuildState

NOW = datetime(2024, 1, 15, 17, 45, tzinfo=UTC)  # 18:45 Berlin


def test_snooze_moves_todays_stop_and_keeps_the_vms_own_time() -> None:
    tags = {"labimage-autostop": "19:00 Europe/Berlin"}
    new, stop = snoozed_tags(tags, 2, NOW)
    assert stop == datetime(2024, 1, 15, 20, 0, tzinfo=UTC)  # 21:00 Berlin
    assert new["labimage-autostop"] == "19:00 Europe/Berlin"
    assert new["labimage-autostop-snooze-until"] == "2024-01-15T20:00:00+00:00"


def test_a_snooze_past_local_midnight_skips_today() -> None:
    new, stop = snoozed_tags({"labimage-autostop": "19:00 Europe/Berlin"}, 6, NOW)
    assert stop is None and new["labimage-autostop-skip-until"] == "2024-01-15"


@pytest.mark.parametrize("value", [None, "", "x", "0", "13", "-1", "1.5"])
def test_bad_hours_name_the_field(value: str | None) -> None:
    with pytest.raises(SnoozeRefused) as caught:
        parse_hours(value, 12)
    assert caught.value.field == "hours"


def test_a_vm_with_auto_stop_off_cannot_be_snoozed() -> None:
    with pytest.raises(SnoozeRefused):
        snoozed_tags({"labimage-autostop": "off"}, 1, NOW)


def test_the_price_table_states_its_date_and_source() -> None:
    prices = default_prices()
    assert prices.as_of and "approximate" in prices.source
    assert prices.vm_per_hour("standard_d4s_v5") == prices.vm_per_hour("Standard_D4s_v5")
    assert prices.vm_per_hour("Standard_Unknown_v9") is None
    assert prices.disk_per_hour(256) == pytest.approx(38.01 / 730)


def test_build_cost_is_unknown_for_an_unpriced_size_never_zero() -> None:
    created = NOW - timedelta(hours=2)
    build = Build(
        id="b1",
        request={"vm": {"size": "Standard_D2s_v5"}, "data_disk": {"size_gb": 256}},
        state=BuildState.FAILED,
        created_at=created,
        updated_at=NOW,
    )
    cost = build_cost(build, default_prices(), NOW + timedelta(days=1))
    assert cost["state"] == "estimated" and cost["hours"] == 2.0
    assert cost["amount"] == pytest.approx(2 * (0.096 + 38.01 / 730 + 5.28 / 730), abs=1e-3)
    odd = build.model_copy(update={"request": {"vm": {"size": "Standard_Rare_v1"}}})
    assert build_cost(odd, default_prices(), NOW)["amount"] is None


def test_stopped_hours_run_to_the_next_stop_and_are_capped() -> None:
    t0 = NOW
    rows = [
        {"VmId": "a", "At": t0},
        {"VmId": "a", "At": t0 + timedelta(hours=10)},
        {"VmId": "b", "At": t0},
    ]
    hours = {(r["VmId"], r["At"]): h for r, h in stopped_hours(rows, t0 + timedelta(days=3))}
    assert hours[("a", t0)] == 10
    assert hours[("b", t0)] == 14  # capped


@pytest.mark.parametrize(
    "tags",
    [
        {"labimage-autostop": "19:00 Europe"},
        {"labimage-autostop": "19:00 America/Indiana"},
        {
            "labimage-autostop": "19:00 Europe/Berlin",
            "labimage-autostop-snooze-until": "9999-12-31T23:00:00+00:00",
        },
    ],
)
def test_a_snooze_of_a_vm_with_hostile_tags_is_refused_naming_the_tag(
    tags: dict[str, str],
) -> None:
    with pytest.raises(SnoozeRefused) as caught:
        snoozed_tags(tags, 2, NOW)
    assert caught.value.field == "labimage-autostop"
