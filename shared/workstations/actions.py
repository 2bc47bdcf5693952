"""What people and the cost guards do to a workstation: start, stop, delete, and the
reconciliation with the VM's real power state. Each is one move of the state table, written
with If-Match (retried when another writer came first)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import StepError
from shared.runtime import Runtime
from shared.workstations import usage
from shared.workstations import vm as ws_vm
from shared.workstations.machine import IllegalMove, WsState, WsTrigger, can_move
from shared.workstations.record import Workstation
from shared.workstations.runner import moved, prepare, send_hop
from shared.workstations.store import ConcurrentChange, WorkstationNotFound

logger = logging.getLogger(__name__)

ATTEMPTS = 5
Change = Callable[[Workstation], Workstation]


class Busy(Exception):
    """The workstation kept changing while we tried to write it."""


def apply(
    rt: Runtime, ws_id: str, trigger: WsTrigger, note: str, change: Change | None = None
) -> Workstation:
    """Move the workstation on `trigger` (after `change`), send its work message if the new
    state has work. IllegalMove when the table has no such move; WorkstationNotFound."""
    store = rt.store.workstations()
    for _ in range(ATTEMPTS):
        stored = store.get(ws_id)
        if not can_move(stored.ws.state, trigger):
            raise IllegalMove(f"a {stored.ws.state} workstation cannot {trigger}")
        before = change(stored.ws) if change else stored.ws
        after = prepare(moved(before, trigger, note), 0)
        try:
            store.replace(stored, after)
        except ConcurrentChange:
            continue
        send_hop(rt, after, 0)  # only after the write succeeded
        return after
    raise Busy(ws_id)


def stop(
    rt: Runtime, ws_id: str, reason: str, now: datetime, *, quota: bool = False
) -> Workstation:
    """Deallocate and record why; the hours stop counting now."""

    def change(ws: Workstation) -> Workstation:
        ws_vm.begin_deallocate(rt.azure, ws.id)
        stopped = usage.stopped(ws, now).model_copy(update={"stop_reason": reason})
        if quota:
            reached = stopped.usage.model_copy(update={"quota_reached": True})
            stopped = stopped.model_copy(update={"usage": reached})
        return stopped

    return apply(rt, ws_id, WsTrigger.STOP, f"stopped: {reason}", change)


def start(
    rt: Runtime, ws_id: str, *, waive_quota: bool = False, now: datetime | None = None
) -> Workstation:
    """Start again; the VM is verified before it counts as running. `waive_quota` (an
    administrator past the quota) lifts the quota for the rest of `now`'s month."""

    def change(ws: Workstation) -> Workstation:
        ws = ws.model_copy(update={"error": None, "stop_reason": None})
        if waive_quota and now is not None:
            waived = usage.current(ws.usage, now).model_copy(update={"quota_waived": True})
            ws = ws.model_copy(update={"usage": waived}).with_event("quota waived this month")
        return ws

    return apply(rt, ws_id, WsTrigger.START, "start requested", change)


def delete(rt: Runtime, ws_id: str) -> Workstation:
    return apply(rt, ws_id, WsTrigger.DELETE, "delete requested")


def reconcile(rt: Runtime, ws: Workstation, now: datetime, why: str = "") -> Workstation:
    """A running workstation whose VM was deallocated outside the controller (auto-stop, idle
    stop, the portal) is recorded as stopped, its hours closed now."""
    if ws.state != WsState.RUNNING:
        return ws
    try:
        state = ws_vm.power_of(rt.azure, ws.id)
    except StepError:
        return ws
    # Only a VM that has come to rest: one still deallocating is being stopped by someone
    # (a person's stop, the quota, a cost guard) who records it, with the reason.
    if state.exists and state.power not in ("deallocated", "stopped"):
        return ws
    reason = why or (
        "its VM is gone" if not state.exists else f"its VM was {state.power} outside labimage"
    )

    def change(current: Workstation) -> Workstation:
        return usage.stopped(current, now).model_copy(update={"stop_reason": reason})

    try:
        return apply(rt, ws.id, WsTrigger.STOP, f"stopped: {reason}", change)
    except (IllegalMove, WorkstationNotFound, Busy):
        return ws


def workstation_of_vm(rt: Runtime, vm_id: str) -> Workstation | None:
    """The workstation whose VM `vm_id` is (by its derived name in the controller's group)."""
    parts = vm_id.strip("/").split("/")
    if len(parts) != 8 or parts[3].lower() != rt.settings.resource_group.lower():
        return None
    name = parts[7]
    if not (name.startswith("labimage-w") and name.endswith("-ws")):
        return None
    ws_id = name[len("labimage-") : -len("-ws")]
    try:
        ws = rt.store.workstations().get(ws_id).ws
    except (WorkstationNotFound, ValueError):
        return None
    return ws if ws_vm.names_of(ws.id)[1].vm == name else None


def stopped_by_guard(rt: Runtime, vm_id: str, kind: str, now: datetime) -> None:
    """The cost guards deallocated `vm_id`: if it is a workstation's, record it (never raises:
    the stop itself is done and recorded by the guard)."""
    reason = f"stopped by {kind}"

    def change(current: Workstation) -> Workstation:
        return usage.stopped(current, now).model_copy(update={"stop_reason": reason})

    try:
        ws = workstation_of_vm(rt, vm_id)
        if ws is not None and ws.state == WsState.RUNNING:
            apply(rt, ws.id, WsTrigger.STOP, reason, change)
    except Exception as exc:  # the guard's stop stands whatever happens here
        logger.warning("workstation record of %s not updated after %s: %s", vm_id, kind, exc)
