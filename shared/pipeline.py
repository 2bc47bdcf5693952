"""Runs one stage message: load the build, call its step, write the result, send the next hop.

The next message is sent only after the state write succeeded. A message whose token is not
the build's current token is a duplicate or stale and is dropped.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from shared import invocation_time, telemetry
from shared.azure.naming import BuildNames
from shared.bus import StageMessage
from shared.errors import PermanentError, TemporaryError
from shared.runtime import Runtime
from shared.state.machine import Stage, Trigger, next_stage
from shared.state.record import Build, BuildState, StageRecord, new_token, utcnow
from shared.state.store import BuildNotFound, ConcurrentUpdate, Stored
from shared.steps.base import Budget, Done, Outcome, Poll, StepContext
from shared.steps.registry import BUDGETS, STEPS

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
HOP_GRACE = timedelta(minutes=5)
# How long an invocation holds its hop. Its step's waits end CLAIM_MARGIN earlier
# (shared/invocation_time.py), which leaves the time to write the result and send the next hop.
CLAIM = timedelta(minutes=3)
CLAIM_MARGIN = timedelta(seconds=30)


async def handle_stage_message(rt: Runtime, body: str | bytes) -> None:
    """Process one message of a stage queue. Raises only for unexpected failures (host retries).

    Each invocation is one telemetry span whose outcome is what `_run_stage` returns.
    """
    message = StageMessage.from_json(body)
    with telemetry.stage_invocation(message.build_id, message.stage.value) as invocation:
        invocation.outcome = await _run_stage(rt, message, invocation)


async def _run_stage(
    rt: Runtime, message: StageMessage, invocation: telemetry.StageInvocation
) -> str:
    """Run the stage the message names; returns what happened (the span's outcome)."""
    try:
        stored = rt.store.get(message.build_id)
    except BuildNotFound:
        logger.warning("message for unknown build %s dropped", message.build_id)
        return "dropped"
    build = stored.build
    if build.state.terminal or build.token != message.token or build.stage != message.stage:
        logger.info(
            "%s message for %s is a duplicate or stale (build is at %s): dropped",
            message.stage,
            build.id,
            build.stage,
        )
        return "dropped"
    record = build.stage_record(build.stage)
    role = "relaunch" if build.stage == Stage.RELAUNCH else "build"
    invocation.build_loaded(record.attempts, BuildNames(build.id).vm(role).vm)
    if build.cancel_requested and build.stage not in (Stage.CLEANUP, Stage.DONE):
        await _move(rt, stored, _fail_stage(build, "cancelled by request", cancelled=True))
        return "cancelled"
    build = _start_stage(build)
    stage = build.stage
    budget = BUDGETS[stage]
    started = build.stage_record(stage).started_at or utcnow()
    if utcnow() - started > budget.deadline:
        reason = f"{stage} passed its time limit of {_minutes(budget)} min"
        await _move(rt, stored, _fail_stage(build, reason))
        return _ended(invocation, build, "failed")
    claimed = _claim(rt, stored, build, message)
    if claimed is None:
        return "dropped"
    stored, build = claimed
    context = StepContext(settings=rt.settings, build=build, azure=rt.azure, keys=rt.keys)
    try:
        with invocation_time.holding((CLAIM - CLAIM_MARGIN).total_seconds()):
            outcome: Outcome = await STEPS[stage](context)
    except TemporaryError as exc:
        if await _retry_or_fail(rt, stored, build, budget, exc):
            return "retry"
        return _ended(invocation, build, "failed")
    except PermanentError as exc:
        logger.warning("%s of %s failed: %s; cleaning up", stage, build.id, exc)
        await _move(rt, stored, _fail_stage(build, str(exc)))
        return _ended(invocation, build, "failed")
    if isinstance(outcome, Poll):
        polled = _record(outcome.build, stage, polls=outcome.build.stage_record(stage).polls + 1)
        if not polled.events or polled.events[-1].message != outcome.note:
            polled = polled.with_event(outcome.note, stage)
        await _commit(rt, stored, polled, stage, outcome.after_s)
        return "poll"
    await _move(rt, stored, _finish_stage(outcome))
    return _ended(invocation, build, "succeeded")


def _claim(
    rt: Runtime, stored: Stored, build: Build, message: StageMessage
) -> tuple[Stored, Build] | None:
    """Hold this hop while its step runs, so that a second copy of the message (a queue
    delivers at least once; a resent hop) cannot run the same step beside it. None: another
    invocation holds it; a copy that finds it held comes back once the hold has ended (the
    holder may have crashed)."""
    now = utcnow()
    held = build.stage_record(build.stage).claimed_until
    if held is not None and held > now:
        logger.info(
            "%s of %s is being run by another invocation: this copy waits for it",
            build.stage,
            build.id,
        )
        rt.bus.send(message, (held - now).total_seconds() + 1)
        return None
    claimed = _record(build, build.stage, claimed_until=now + CLAIM)
    try:
        return rt.store.replace(stored, claimed), claimed
    except ConcurrentUpdate:
        logger.info("%s of %s was claimed by another copy: dropped", build.stage, build.id)
        return None


def _released(build: Build) -> Build:
    """The build without any stage's hold (written when an invocation commits)."""
    for name, record in build.stages.items():
        if record.claimed_until is not None:
            build = build.with_stage_record(name, record.model_copy(update={"claimed_until": None}))
    return build


def _ended(invocation: telemetry.StageInvocation, build: Build, outcome: str) -> str:
    """Report a stage that ended now: its duration since it started."""
    started = build.stage_record(build.stage).started_at
    duration = (utcnow() - started).total_seconds() if started else None
    invocation.stage_ended(build.stage.value, outcome, duration)
    return outcome


async def fail_from_poison(rt: Runtime, body: str | bytes, queue: str) -> None:
    """A message the host gave up on: fail its build the same way a permanent error does."""
    message = StageMessage.from_json(body)
    try:
        stored = rt.store.get(message.build_id)
    except BuildNotFound:
        return
    build = stored.build
    if build.state.terminal or build.stage != message.stage:
        return
    reason = (
        f"{message.stage} crashed repeatedly (message moved to {queue}); "
        f"last error: {build.stage_record(message.stage).last_error or 'see the logs'}"
    )
    if build.stage == Stage.CLEANUP:
        final = build.model_copy(
            update={"state": build.outcome or BuildState.FAILED, "stage": Stage.DONE}
        )
        final = final.model_copy(update={"error": _join(build.error, reason)})
        await _commit(rt, stored, final.with_event(reason, Stage.CLEANUP), None, 0)
        return
    await _move(rt, stored, _fail_stage(build, reason))


def _start_stage(build: Build) -> Build:
    record = build.stage_record(build.stage)
    if record.state == "running":
        return build
    started = record.model_copy(update={"state": "running", "started_at": utcnow()})
    build = build.with_stage_record(build.stage, started).with_event(f"{build.stage} started")
    if build.state == BuildState.QUEUED:
        build = build.model_copy(update={"state": BuildState.RUNNING})
    return build


def _finish_stage(done: Done) -> Build:
    build = done.build
    record = build.stage_record(build.stage).model_copy(
        update={"state": "succeeded", "finished_at": utcnow()}
    )
    build = build.with_stage_record(build.stage, record).with_event(done.note)
    logger.info("%s of %s succeeded: %s", build.stage, build.id, done.note)
    if build.stage == Stage.CLEANUP:
        outcome = build.outcome or BuildState.SUCCEEDED
        return build.model_copy(
            update={"stage": next_stage(Stage.CLEANUP, Trigger.CLEANED), "state": outcome}
        )
    following = next_stage(build.stage, Trigger.SUCCEEDED)
    if following == Stage.CLEANUP and build.outcome is None:
        build = build.model_copy(update={"outcome": BuildState.SUCCEEDED})
    return build.model_copy(update={"stage": following})


def _fail_stage(build: Build, reason: str, cancelled: bool = False) -> Build:
    stage = build.stage
    record = build.stage_record(stage).model_copy(
        update={
            "state": "cancelled" if cancelled else "failed",
            "finished_at": utcnow(),
            "last_error": None if cancelled else reason,
        }
    )
    build = build.with_stage_record(stage, record).with_event(reason, stage)
    if stage == Stage.CLEANUP:
        # Cleanup gives up: the build ends with what it could not remove named in the error.
        return build.model_copy(
            update={
                "stage": Stage.DONE,
                "state": build.outcome or BuildState.FAILED,
                "error": _join(build.error, reason),
            }
        )
    trigger = Trigger.CANCELLED if cancelled else Trigger.FAILED
    outcome = BuildState.CANCELLED if cancelled else BuildState.FAILED
    error = None if cancelled else f"{stage} failed: {reason}"
    return build.model_copy(
        update={"stage": next_stage(stage, trigger), "outcome": outcome, "error": error}
    )


async def _retry_or_fail(
    rt: Runtime, stored: Stored, build: Build, budget: Budget, exc: TemporaryError
) -> bool:
    """Schedule a retry (True) or fail the stage when the budget is spent (False)."""
    stage = build.stage
    record = build.stage_record(stage)
    retries = record.attempts + 1
    delay = min(exc.retry_after * (2 ** min(record.attempts, 6)), MAX_BACKOFF_S)
    started = record.started_at or utcnow()
    if retries > budget.max_retries:
        reason = f"{exc} (gave up after {budget.max_retries} retries)"
        await _move(rt, stored, _fail_stage(build, reason))
        return False
    if utcnow() + timedelta(seconds=delay) - started > budget.deadline:
        reason = f"{exc} (the next retry would pass the {_minutes(budget)} min time limit)"
        await _move(rt, stored, _fail_stage(build, reason))
        return False
    logger.warning(
        "%s of %s failed temporarily: %s; retrying in %.0f s", stage, build.id, exc, delay
    )
    retried = _record(build, stage, attempts=retries, last_error=str(exc))
    retried = retried.with_event(f"temporary failure: {exc}; retrying in {delay:.0f} s", stage)
    await _commit(rt, stored, retried, stage, delay)
    return True


async def _move(rt: Runtime, stored: Stored, build: Build) -> None:
    """Write a build that changed stage and, if it is not finished, send its next message."""
    target = None if build.stage == Stage.DONE else build.stage
    await _commit(rt, stored, build, target, 0)


async def _commit(
    rt: Runtime, stored: Stored, build: Build, target: Stage | None, delay_s: float
) -> None:
    token = new_token() if target else ""
    due = utcnow() + timedelta(seconds=delay_s) + HOP_GRACE if target else None
    build = _released(build).model_copy(
        update={"token": token, "next_hop_due": due, "updated_at": utcnow()}
    )
    try:
        rt.store.replace(stored, build)
    except ConcurrentUpdate:
        fresh = rt.store.get(build.id)
        if fresh.build.token != stored.build.token:
            logger.info("%s of %s lost a race to another writer: dropped", build.stage, build.id)
            return
        # Only a cancel request came in between: keep it and write again.
        merged = build.model_copy(update={"cancel_requested": fresh.build.cancel_requested})
        rt.store.replace(fresh, merged)
    if target:
        rt.bus.send(StageMessage(build.id, target, token), delay_s)
    elif build.state.terminal:
        telemetry.build_ended(build.state.value)
        if build.reply_to:  # a queue submission asked to hear how it ended
            _reply_outcome(rt, build)


def _reply_outcome(rt: Runtime, build: Build) -> None:
    """Tell the submitter's reply queue how the build ended; the build is already recorded as
    ended, so a reply that cannot be sent is logged, never retried through the stage."""
    try:
        sent = rt.bus.reply(build.reply_to, json.dumps(outcome_reply(build)))
    except Exception as exc:
        logger.warning("outcome reply for %s not sent: %s", build.id, type(exc).__name__)
        return
    if not sent:
        logger.warning("outcome reply for %s not sent: queue %s is gone", build.id, build.reply_to)


def outcome_reply(build: Build) -> dict[str, object]:
    """The reply_to message of a finished build: its state, image or error."""
    return {
        "status": build.state.value,
        "id": build.id,
        "image_id": build.outputs.get("image_id"),
        "gallery_image_version_id": build.outputs.get("gallery_image_version_id"),
        "error": build.error,
    }


def _record(build: Build, stage: Stage, **changes: object) -> Build:
    record: StageRecord = build.stage_record(stage).model_copy(update=changes)
    return build.with_stage_record(stage, record)


def _minutes(budget: Budget) -> int:
    return int(budget.deadline.total_seconds() // 60)


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second
