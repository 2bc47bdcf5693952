"""The transition table: every stage moves forward on success and to cleanup otherwise."""

import pytest

from shared.state.machine import (
    PIPELINE,
    TRANSITIONS,
    IllegalMove,
    Stage,
    Trigger,
    next_stage,
    queue_name,
)


def test_success_walks_the_recipe_in_order_then_cleans_up() -> None:
    stage = Stage.PROVISION
    walked = [stage]
    while stage != Stage.CLEANUP:
        stage = next_stage(stage, Trigger.SUCCEEDED)
        walked.append(stage)
    assert walked == [*PIPELINE, Stage.CLEANUP]
    assert next_stage(Stage.CLEANUP, Trigger.CLEANED) == Stage.DONE


@pytest.mark.parametrize("stage", PIPELINE)
@pytest.mark.parametrize("trigger", [Trigger.FAILED, Trigger.CANCELLED])
def test_every_stage_goes_to_cleanup_on_failure_or_cancel(stage: Stage, trigger: Trigger) -> None:
    assert next_stage(stage, trigger) == Stage.CLEANUP


@pytest.mark.parametrize(
    ("stage", "trigger"),
    [
        (Stage.DONE, Trigger.SUCCEEDED),
        (Stage.CLEANUP, Trigger.SUCCEEDED),
        (Stage.MOUNT, Trigger.CLEANED),
    ],
)
def test_moves_not_in_the_table_are_refused(stage: Stage, trigger: Trigger) -> None:
    with pytest.raises(IllegalMove):
        next_stage(stage, trigger)


def test_the_table_has_one_destination_per_source_and_trigger() -> None:
    keys = [(s, t) for s, t, _ in TRANSITIONS]
    assert len(keys) == len(set(keys))


def test_queue_names_follow_the_design() -> None:
    assert queue_name(Stage.PROVISION) == "build-provision"
    assert queue_name(Stage.CLEANUP) == "build-cleanup"
