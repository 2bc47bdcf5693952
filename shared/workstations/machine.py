"""The allowed moves of a workstation, as one literal table a reader can see whole."""

from __future__ import annotations

from enum import StrEnum


class WsState(StrEnum):
    CREATING = "creating"
    VERIFYING = "verifying"
    RUNNING = "running"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"


class WsTrigger(StrEnum):
    CREATED = "created"  # the VM is up and answers SSH with its pinned host key
    VERIFIED = "verified"  # Jupyter answered through the SSH tunnel
    CHECK_FAILED = "check_failed"  # the check failed: the VM is deallocated and reported
    FAILED = "failed"  # Azure refused the VM, or the step ran out of its budget
    START = "start"  # a person asked (or an admin past the quota)
    STOP = "stop"  # a person, auto-stop, idle stop or the quota
    DELETE = "delete"
    GONE = "gone"  # nothing of it is left


# (source, trigger, destination).
TRANSITIONS: tuple[tuple[WsState, WsTrigger, WsState], ...] = (
    (WsState.CREATING, WsTrigger.CREATED, WsState.VERIFYING),
    (WsState.CREATING, WsTrigger.FAILED, WsState.DELETING),
    (WsState.CREATING, WsTrigger.DELETE, WsState.DELETING),
    (WsState.VERIFYING, WsTrigger.VERIFIED, WsState.RUNNING),
    (WsState.VERIFYING, WsTrigger.CHECK_FAILED, WsState.STOPPED),
    (WsState.VERIFYING, WsTrigger.FAILED, WsState.STOPPED),
    (WsState.VERIFYING, WsTrigger.STOP, WsState.STOPPED),
    (WsState.VERIFYING, WsTrigger.DELETE, WsState.DELETING),
    (WsState.RUNNING, WsTrigger.STOP, WsState.STOPPED),
    (WsState.RUNNING, WsTrigger.DELETE, WsState.DELETING),
    (WsState.STOPPED, WsTrigger.START, WsState.VERIFYING),
    (WsState.STOPPED, WsTrigger.DELETE, WsState.DELETING),
    (WsState.DELETING, WsTrigger.GONE, WsState.DELETED),
)

_MOVES: dict[tuple[WsState, WsTrigger], WsState] = {(s, t): d for s, t, d in TRANSITIONS}

# The states in which the controller has work to do, and the queue that carries it.
WORK_QUEUES: dict[WsState, str] = {
    WsState.CREATING: "ws-create",
    WsState.VERIFYING: "ws-verify",
    WsState.DELETING: "ws-delete",
}


class IllegalMove(Exception):
    pass


def can_move(source: WsState, trigger: WsTrigger) -> bool:
    return (source, trigger) in _MOVES


def next_state(source: WsState, trigger: WsTrigger) -> WsState:
    """Where a workstation goes from `source` on `trigger`; IllegalMove if the table says no."""
    try:
        return _MOVES[(source, trigger)]
    except KeyError:
        raise IllegalMove(f"a {source} workstation cannot {trigger}") from None
