"""How long the current stage invocation may still wait.

A stage invocation holds its hop for `pipeline.CLAIM`; once that hold ends, a second copy of
the message (queues deliver at least once, the watchdog resends) runs the same step. So no
wait inside a step may outlast the hold. Waits that can stop early and report "not yet"
(Resource Manager operations, SSH on a booting VM, guest jobs) ask `bounded(wait_s)`; a wait
that cannot be cut short without changing its meaning (Jupyter's start, which fails when it is
over) begins only when `room_for(wait_s)`, otherwise the step hands back and the next
invocation starts it with a fresh hold.

Outside a stage invocation (a workstation hop, a timer, a test) nothing is bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ends_at: ContextVar[float | None] = ContextVar("labimage_invocation_ends_at", default=None)


@contextmanager
def holding(seconds: float) -> Iterator[None]:
    """Waits inside the block end within `seconds` from now."""
    token = _ends_at.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _ends_at.reset(token)


def remaining() -> float:
    """Seconds the invocation may still wait (infinite outside `holding`)."""
    ends_at = _ends_at.get()
    return math.inf if ends_at is None else max(0.0, ends_at - time.monotonic())


def bounded(wait_s: float) -> float:
    """`wait_s`, cut to what the invocation may still wait."""
    return max(0.0, min(wait_s, remaining()))


def room_for(wait_s: float) -> bool:
    """The whole of `wait_s` fits in what the invocation may still wait."""
    return remaining() >= wait_s
