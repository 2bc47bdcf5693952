"""Timers: the watchdog that resumes builds whose next hop went missing.

The cost-guard timers (auto-stop, idle stop, sweeper) live in functions/costguard.py."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.runtime import get_runtime
from shared.state.record import utcnow
from shared.watchdog import resume_stalled_builds

logger = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("watchdog")
@bp.timer_trigger(arg_name="timer", schedule="%WATCHDOG_SCHEDULE%", run_on_startup=False)
def watchdog(timer: func.TimerRequest) -> None:
    resumed = resume_stalled_builds(get_runtime(), utcnow())
    if resumed:
        logger.warning("watchdog: resent the next message of %s", ", ".join(resumed))
