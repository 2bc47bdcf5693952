"""The hold on a hop bounds every wait inside the invocation (shared/invocation_time.py)."""

from __future__ import annotations

import math
import time

from shared import invocation_time


def test_outside_an_invocation_nothing_is_cut() -> None:
    assert invocation_time.remaining() == math.inf
    assert invocation_time.bounded(50) == 50
    assert invocation_time.room_for(120)


def test_inside_a_hold_waits_are_cut_to_what_is_left_and_long_ones_wait_for_the_next() -> None:
    with invocation_time.holding(5):
        assert 4 < invocation_time.bounded(50) <= 5
        assert invocation_time.bounded(1) == 1
        assert not invocation_time.room_for(120)
        assert invocation_time.room_for(3)
    assert invocation_time.bounded(50) == 50  # the hold ends with its block


def test_a_spent_hold_leaves_no_time_rather_than_negative_time() -> None:
    with invocation_time.holding(0.01):
        time.sleep(0.05)
        assert invocation_time.bounded(50) == 0.0
        assert not invocation_time.room_for(0.001)
