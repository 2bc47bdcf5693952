"""Duplicate, stale and poison messages, and cancel, through the real pipeline and Azurite.

A stage step is replaced by one that counts its runs where the test is about how often the
pipeline runs a step (two copies of one message at once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared import pipeline
from shared.azure import lro
from shared.bus import StageMessage
from shared.pipeline import fail_from_poison, handle_stage_message
from shared.runtime import Runtime
from shared.state.machine import Stage
from shared.state.record import Build, BuildState, StageRecord, utcnow
from shared.steps.base import Done, Outcome, Poll, StepContext
from shared.steps.registry import STEPS


def _seed(runtime: Runtime, **changes: object) -> Build:
    build = Build(
        id="bmsg000001", request={"name": "x", "owner": "o"}, owner="o", token="current"
    ).model_copy(update=changes)
    runtime.store.create(build)
    return build


def _queued(runtime: Runtime, queue: str) -> list[StageMessage]:
    client = runtime.bus.client(queue)
    return [StageMessage.from_json(m.content) for m in client.receive_messages(max_messages=32)]


async def test_a_message_with_an_old_token_is_dropped_without_any_change(runtime: Runtime) -> None:
    _seed(runtime, stage=Stage.MOUNT)
    before = runtime.store.get("bmsg000001")
    await handle_stage_message(runtime, StageMessage("bmsg000001", Stage.MOUNT, "old").to_json())
    after = runtime.store.get("bmsg000001")
    assert after.etag == before.etag
    assert _queued(runtime, "build-mount") == [] and _queued(runtime, "build-install") == []


async def test_a_message_for_another_stage_is_dropped(runtime: Runtime) -> None:
    _seed(runtime, stage=Stage.INSTALL)
    await handle_stage_message(
        runtime, StageMessage("bmsg000001", Stage.MOUNT, "current").to_json()
    )
    assert runtime.store.get("bmsg000001").build.stage == Stage.INSTALL


async def test_a_message_for_a_finished_build_is_dropped(runtime: Runtime) -> None:
    _seed(runtime, stage=Stage.DONE, state=BuildState.SUCCEEDED)
    body = StageMessage("bmsg000001", Stage.DONE, "current").to_json()
    await handle_stage_message(runtime, body)
    assert runtime.store.get("bmsg000001").build.state == BuildState.SUCCEEDED


async def test_cancel_moves_the_build_to_cleanup_with_one_new_message(runtime: Runtime) -> None:
    _seed(runtime, stage=Stage.INSTALL, cancel_requested=True, state=BuildState.RUNNING)
    await handle_stage_message(
        runtime, StageMessage("bmsg000001", Stage.INSTALL, "current").to_json()
    )
    build = runtime.store.get("bmsg000001").build
    assert build.stage == Stage.CLEANUP and build.outcome == BuildState.CANCELLED
    sent = _queued(runtime, "build-cleanup")
    assert [(m.build_id, m.token) for m in sent] == [("bmsg000001", build.token)]
    # The same cancelled message delivered again changes nothing: its token is spent.
    await handle_stage_message(
        runtime, StageMessage("bmsg000001", Stage.INSTALL, "current").to_json()
    )
    assert _queued(runtime, "build-cleanup") == []


async def test_a_poison_message_fails_its_build_and_starts_cleanup(runtime: Runtime) -> None:
    _seed(runtime, stage=Stage.VERIFY, state=BuildState.RUNNING)
    body = StageMessage("bmsg000001", Stage.VERIFY, "current").to_json()
    await fail_from_poison(runtime, body, "build-verify-poison")
    build = runtime.store.get("bmsg000001").build
    assert build.stage == Stage.CLEANUP
    assert build.outcome == BuildState.FAILED
    assert "verify crashed repeatedly" in (build.error or "")
    assert len(_queued(runtime, "build-cleanup")) == 1


def _counting_step(runs: list[str], outcome: str = "done") -> Callable[[StepContext], Any]:
    """A stage step that records each run and takes a moment, as a real one does."""

    async def step(ctx: StepContext) -> Outcome:
        runs.append(ctx.build.id)
        await asyncio.sleep(0.3)
        if outcome == "poll":
            return Poll(ctx.build, 0, "still working")
        return Done(ctx.build, "done")

    return step


async def test_a_message_delivered_twice_at_once_runs_its_step_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(runtime, stage=Stage.MOUNT, state=BuildState.RUNNING)
    runs: list[str] = []
    monkeypatch.setitem(STEPS, Stage.MOUNT, _counting_step(runs))
    body = StageMessage("bmsg000001", Stage.MOUNT, "current").to_json()
    await asyncio.gather(handle_stage_message(runtime, body), handle_stage_message(runtime, body))
    assert runs == ["bmsg000001"]
    build = runtime.store.get("bmsg000001").build
    assert build.stage == Stage.INSTALL
    assert build.stage_record(Stage.MOUNT).claimed_until is None  # released with the commit
    assert len(_queued(runtime, "build-install")) == 1


async def test_a_hold_left_by_a_crashed_invocation_delays_the_hop_but_does_not_lose_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = StageRecord(state="running", claimed_until=utcnow() + timedelta(seconds=1))
    _seed(runtime, stage=Stage.MOUNT, state=BuildState.RUNNING, stages={"mount": held})
    runs: list[str] = []
    monkeypatch.setitem(STEPS, Stage.MOUNT, _counting_step(runs))
    body = StageMessage("bmsg000001", Stage.MOUNT, "current").to_json()
    await handle_stage_message(runtime, body)
    assert runs == []  # held: the copy waits for the hold to end
    await asyncio.sleep(3)
    waiting = _queued(runtime, "build-mount")
    assert [m.token for m in waiting] == ["current"]
    await handle_stage_message(runtime, waiting[0].to_json())
    assert runs == ["bmsg000001"]


async def test_a_polling_stage_is_not_held_up_by_its_own_earlier_hop(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(runtime, stage=Stage.MOUNT, state=BuildState.RUNNING)
    runs: list[str] = []
    monkeypatch.setitem(STEPS, Stage.MOUNT, _counting_step(runs, "poll"))
    await handle_stage_message(
        runtime, StageMessage("bmsg000001", Stage.MOUNT, "current").to_json()
    )
    again = _queued(runtime, "build-mount")
    assert len(again) == 1
    await handle_stage_message(runtime, again[0].to_json())
    assert runs == ["bmsg000001", "bmsg000001"]


async def test_a_step_waiting_on_azure_hands_back_before_its_hold_on_the_hop_ends(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second copy of the message runs the step once the hold ends: the first invocation's
    waits must be over by then, however long each was asked to be."""
    monkeypatch.setattr(pipeline, "CLAIM", timedelta(seconds=4))
    monkeypatch.setattr(pipeline, "CLAIM_MARGIN", timedelta(seconds=3))
    _seed(runtime, stage=Stage.MOUNT, state=BuildState.RUNNING)

    async def waits_for_a_vm_that_never_runs(ctx: StepContext) -> Outcome:
        lro.wait_until("a VM runs", lambda: False, 60)  # as bring_up_vm waits on Azure
        return Poll(ctx.build, 0, "VM still starting")

    monkeypatch.setitem(STEPS, Stage.MOUNT, waits_for_a_vm_that_never_runs)
    started = time.monotonic()
    await handle_stage_message(
        runtime, StageMessage("bmsg000001", Stage.MOUNT, "current").to_json()
    )
    assert time.monotonic() - started < 4
    build = runtime.store.get("bmsg000001").build
    assert build.stage_record(Stage.MOUNT).claimed_until is None
    assert build.events[-1].message == "VM still starting"
