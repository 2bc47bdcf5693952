"""Long-running Resource Manager operations: a result counts only once its operation ended.

azure-core's `poller.result(timeout=...)` returns when the time is up whether or not the
operation finished, handing back what it has so far (the first reply, provisioningState
Creating or Updating). The controller never builds on that: it reports "not yet" and the
stage polls again later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.polling import LROPoller

from shared import invocation_time, telemetry
from shared.azure.boundary import arm_call, get_or_none

T = TypeVar("T")

LRO_WAIT_S = 50  # one invocation never waits much longer than this on Resource Manager
_STILL_RUNNING = {"creating", "updating", "deleting", "accepted", "running", "inprogress"}


def finished(poller: LROPoller[T], wait_s: float = LRO_WAIT_S) -> T | None:
    """The operation's final result after waiting at most `wait_s`; None while it still runs.
    A failed operation raises as azure-core raises it."""
    result = poller.result(timeout=invocation_time.bounded(wait_s))
    return result if poller.done() else None


def provisioning_state(resource: Any) -> str:
    """`provisioningState` of a model, flattened or under `properties` ('' when absent)."""
    state = getattr(resource, "provisioning_state", None)
    properties = getattr(resource, "properties", None)
    if state is None and properties is not None:
        state = getattr(properties, "provisioning_state", None)
    return str(getattr(state, "value", state) or "")


def ensure(what: str, get: Callable[[], T], create: Callable[[], LROPoller[T]]) -> T | None:
    """Create-or-find one resource; the finished resource, or None while its operation runs.

    A resource that is there and Succeeded is used as it is; one still being written is
    left to finish (a second write would race it); a missing or Failed one is written."""
    existing = get_or_none(f"read {what}", get)
    if existing is not None:
        state = provisioning_state(existing).lower()
        if state == "succeeded":
            return existing
        if state in _STILL_RUNNING:
            return None
    with arm_call(f"create {what}"):
        return finished(create(), LRO_WAIT_S)


def ended(what: str, poller: LROPoller[Any], wait_s: float = LRO_WAIT_S) -> bool:
    """Wait at most `wait_s` for a started operation; True once it succeeded.

    azure-core's ARM polling asks again after the `Retry-After` each answer carries (the
    clients' `polling_interval` only applies when an answer has none), so the end is noticed
    when Resource Manager says to look, not on a fixed timer. A failed operation raises, mapped
    as every Resource Manager error is."""
    with arm_call(f"wait for {what}"):
        poller.result(timeout=invocation_time.bounded(wait_s))
        return poller.done()


def retry_after(poller: LROPoller[Any], default: float) -> float:
    """The `Retry-After` (seconds) of the operation's last answer, else `default`."""
    method = poller.polling_method()
    response = getattr(method, "_pipeline_response", None)
    headers = getattr(getattr(response, "http_response", None), "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


RECHECK_S = 1.0  # between reads of a resource whose operation an earlier invocation started


def wait_until(
    what: str, done: Callable[[], bool], wait_s: float = LRO_WAIT_S, every_s: float = RECHECK_S
) -> bool:
    """Read until `done()` is true or `wait_s` passed; True if it became true.

    For an operation an earlier invocation started (its poller is gone with that invocation):
    its end is still seen within `every_s` rather than on the stage's next visit."""
    deadline = time.monotonic() + invocation_time.bounded(wait_s)
    with telemetry.span(f"arm wait until {what}"):
        while True:
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))
