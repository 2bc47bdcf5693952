"""Runs one workstation message: load, do the work of its state, write, send the next hop.

As for builds: the next message is sent only after the state write succeeded, and a message
whose token is not the workstation's current token is a duplicate or stale and is dropped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import PermanentError, TemporaryError
from shared.runtime import Runtime
from shared.state.record import new_token, utcnow
from shared.workstations import usage
from shared.workstations.machine import WORK_QUEUES, WsState, WsTrigger, next_state
from shared.workstations.record import Workstation
from shared.workstations.steps import STEPS, Moved, Wait, WsContext, stop_vm
from shared.workstations.store import ConcurrentChange, StoredWs, WorkstationNotFound

logger = logging.getLogger(__name__)

MAX_RETRIES = 8
MAX_BACKOFF_S = 120.0
HOP_GRACE = timedelta(minutes=5)
RETRY_DELETE_S = 300.0
DEADLINES = {
    WsState.CREATING: timedelta(minutes=30),
    WsState.VERIFYING: timedelta(minutes=20),
    WsState.DELETING: timedelta(minutes=30),
}


@dataclass(frozen=True)
class WsMessage:
    """What a workstation queue carries: which workstation, which state, which hop."""

    ws_id: str
    state: WsState
    token: str

    def to_json(self) -> str:
        return json.dumps(
            {"workstation_id": self.ws_id, "state": self.state.value, "token": self.token}
        )

    @classmethod
    def from_json(cls, body: str | bytes) -> WsMessage:
        data = json.loads(body)
        return cls(str(data["workstation_id"]), WsState(data["state"]), str(data["token"]))


def context(rt: Runtime, now: datetime | None = None) -> WsContext:
    return WsContext(rt.settings, rt.azure, rt.keys, now or utcnow())


async def handle_message(rt: Runtime, body: str | bytes) -> str:
    """Process one message of a workstation queue; returns what happened."""
    message = WsMessage.from_json(body)
    store = rt.store.workstations()
    try:
        stored = store.get(message.ws_id)
    except WorkstationNotFound:
        return "dropped"
    ws = stored.ws
    if ws.state != message.state or ws.token != message.token or ws.state not in STEPS:
        logger.info(
            "%s message for %s is stale (it is %s): dropped", message.state, ws.id, ws.state
        )
        return "dropped"
    ctx = context(rt)
    started = ws.work_started_at or ctx.now
    ws = ws.model_copy(update={"work_started_at": started})
    if ctx.now - started > DEADLINES[ws.state]:
        return _give_up(rt, stored, ctx, ws, f"{ws.state} passed its time limit")
    try:
        outcome = await STEPS[ws.state](ctx, ws)
    except TemporaryError as exc:
        retries = ws.attempts + 1
        if retries > MAX_RETRIES:
            reason = f"{exc} (gave up after {MAX_RETRIES} retries)"
            return _give_up(rt, stored, ctx, ws, reason)
        delay = min(exc.retry_after * 2 ** min(ws.attempts, 6), MAX_BACKOFF_S)
        logger.warning(
            "%s of %s failed temporarily: %s; retrying in %.0f s", ws.state, ws.id, exc, delay
        )
        retried = ws.model_copy(update={"attempts": retries}).with_event(
            f"temporary failure: {exc}"
        )
        return commit_wait(rt, stored, retried, delay)
    except PermanentError as exc:
        return _give_up(rt, stored, ctx, ws, str(exc))
    if isinstance(outcome, Wait):
        waited = outcome.ws
        if not waited.events or waited.events[-1].message != outcome.note:
            waited = waited.with_event(outcome.note)
        return commit_wait(rt, stored, waited, outcome.after_s)
    return commit_move(rt, stored, outcome)


def fail_from_poison(rt: Runtime, body: str | bytes, queue: str) -> str:
    """A message the host gave up on: the workstation fails its current work as a permanent
    error would (a creation is cleaned up, a start left stopped, a delete tried again)."""
    message = WsMessage.from_json(body)
    try:
        stored = rt.store.workstations().get(message.ws_id)
    except WorkstationNotFound:
        return "dropped"
    ws = stored.ws
    if ws.state != message.state or ws.token != message.token:
        return "dropped"
    reason = f"its work crashed repeatedly (message moved to {queue})"
    return _give_up(rt, stored, context(rt), ws, reason)


def _give_up(rt: Runtime, stored: StoredWs, ctx: WsContext, ws: Workstation, reason: str) -> str:
    """A creation that failed is cleaned up; a start that failed is left stopped; a delete
    that failed is tried again later from the start (there is nothing to fall back to)."""
    logger.warning("%s of workstation %s failed: %s", ws.state, ws.id, reason)
    failed = ws.model_copy(update={"error": f"{ws.state} failed: {reason}"})
    if ws.state == WsState.DELETING:
        again = failed.model_copy(update={"attempts": 0, "work_started_at": None, "progress": {}})
        note = f"delete failed: {reason}; trying again in {RETRY_DELETE_S:.0f} s"
        return commit_wait(rt, stored, again.with_event(note), RETRY_DELETE_S)
    if ws.state == WsState.VERIFYING:
        stop_vm(ctx, ws)
        failed = usage.stopped(failed, ctx.now).model_copy(update={"stop_reason": "start failed"})
    return commit_move(rt, stored, Moved(failed, WsTrigger.FAILED, f"{ws.state} failed: {reason}"))


def moved(ws: Workstation, trigger: WsTrigger, note: str) -> Workstation:
    """The workstation after `trigger`: new state, fresh progress and counters."""
    target = next_state(ws.state, trigger)
    return ws.model_copy(
        update={"state": target, "progress": {}, "attempts": 0, "work_started_at": None}
    ).with_event(note)


def commit_move(rt: Runtime, stored: StoredWs, outcome: Moved) -> str:
    ws = moved(outcome.ws, outcome.trigger, outcome.note)
    if ws.state == WsState.RUNNING:
        ws = ws.model_copy(update={"error": None, "stop_reason": None})
    _write(rt, stored, ws, 0)
    return outcome.trigger.value


def commit_wait(rt: Runtime, stored: StoredWs, ws: Workstation, delay_s: float) -> str:
    _write(rt, stored, ws, delay_s)
    return "wait"


def prepare(ws: Workstation, delay_s: float) -> Workstation:
    """The record as written: a fresh token and due time when its state has work."""
    queue = WORK_QUEUES.get(ws.state)
    token = new_token() if queue else ""
    due = utcnow() + timedelta(seconds=delay_s) + HOP_GRACE if queue else None
    return ws.model_copy(update={"token": token, "next_hop_due": due, "updated_at": utcnow()})


def send_hop(rt: Runtime, ws: Workstation, delay_s: float) -> None:
    """The message of a written record whose state has work (none otherwise)."""
    queue = WORK_QUEUES.get(ws.state)
    if queue:
        rt.bus.send_raw(queue, WsMessage(ws.id, ws.state, ws.token).to_json(), delay_s)


def _write(rt: Runtime, stored: StoredWs, ws: Workstation, delay_s: float) -> None:
    ws = prepare(ws, delay_s)
    try:
        rt.store.workstations().replace(stored, ws)
    except ConcurrentChange:
        logger.info("workstation %s changed meanwhile (%s): this hop is dropped", ws.id, ws.state)
        return
    send_hop(rt, ws, delay_s)
