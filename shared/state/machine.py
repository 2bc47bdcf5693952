"""The allowed moves of a build, as one literal table a reader can see whole."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    PROVISION = "provision"
    MOUNT = "mount"
    INSTALL = "install"
    VERIFY = "verify"
    CAPTURE = "capture"
    RELAUNCH = "relaunch"
    CLEANUP = "cleanup"
    DONE = "done"


class Trigger(StrEnum):
    SUCCEEDED = "succeeded"  # the stage did its part
    FAILED = "failed"  # permanent error, exhausted budget, or a poison message
    CANCELLED = "cancelled"  # the user asked to stop
    CLEANED = "cleaned"  # cleanup finished (or gave up and reported what is left)


PIPELINE: tuple[Stage, ...] = (
    Stage.PROVISION,
    Stage.MOUNT,
    Stage.INSTALL,
    Stage.VERIFY,
    Stage.CAPTURE,
    Stage.RELAUNCH,
)

# (source, trigger, destination). Every successful stage hands over to the next; the last one
# hands over to cleanup, which removes what is not kept; any failure or cancel goes to cleanup.
TRANSITIONS: tuple[tuple[Stage, Trigger, Stage], ...] = (
    (Stage.PROVISION, Trigger.SUCCEEDED, Stage.MOUNT),
    (Stage.MOUNT, Trigger.SUCCEEDED, Stage.INSTALL),
    (Stage.INSTALL, Trigger.SUCCEEDED, Stage.VERIFY),
    (Stage.VERIFY, Trigger.SUCCEEDED, Stage.CAPTURE),
    (Stage.CAPTURE, Trigger.SUCCEEDED, Stage.RELAUNCH),
    (Stage.RELAUNCH, Trigger.SUCCEEDED, Stage.CLEANUP),
    *((stage, Trigger.FAILED, Stage.CLEANUP) for stage in PIPELINE),
    *((stage, Trigger.CANCELLED, Stage.CLEANUP) for stage in PIPELINE),
    (Stage.CLEANUP, Trigger.CLEANED, Stage.DONE),
)

_MOVES: dict[tuple[Stage, Trigger], Stage] = {(s, t): d for s, t, d in TRANSITIONS}


class IllegalMove(Exception):
    pass


def next_stage(source: Stage, trigger: Trigger) -> Stage:
    """Where a build goes from `source` on `trigger`; IllegalMove if the table has no such move."""
    try:
        return _MOVES[(source, trigger)]
    except KeyError:
        raise IllegalMove(f"no move from {source} on {trigger}") from None


def queue_name(stage: Stage) -> str:
    """The queue that carries messages for a stage (DESIGN.md: build-<stage>)."""
    return f"build-{stage.value}"
