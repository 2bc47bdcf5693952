"""Resume builds whose next message was lost (a crash between the state write and the send)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.bus import StageMessage
from shared.runtime import Runtime
from shared.state.machine import Stage
from shared.state.store import ConcurrentUpdate

logger = logging.getLogger(__name__)

RESEND_GRACE = timedelta(minutes=5)


def resume_stalled_builds(rt: Runtime, now: datetime) -> list[str]:
    """Resend the current message of every unfinished build that is overdue; returns their ids.

    The resent message carries the build's current token, so if the original does turn up
    after all, whichever runs second is recognised as a duplicate and dropped.
    """
    resumed = []
    for build in rt.store.scan_active():
        if build.stage == Stage.DONE or not build.token or build.next_hop_due is None:
            continue
        if now < build.next_hop_due:
            continue
        stored = rt.store.get(build.id)
        if stored.build.token != build.token:
            continue
        try:
            rt.store.replace(
                stored,
                stored.build.model_copy(update={"next_hop_due": now + RESEND_GRACE}).with_event(
                    "watchdog: the next step was overdue; resent it"
                ),
            )
        except ConcurrentUpdate:
            continue
        rt.bus.send(StageMessage(build.id, build.stage, build.token))
        resumed.append(build.id)
    return resumed
