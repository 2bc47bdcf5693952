"""Timers: evening auto-stop, and the watchdog that resumes builds whose next hop went missing."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.autostop import run_autostop
from shared.runtime import get_runtime
from shared.state.record import utcnow
from shared.watchdog import resume_stalled_builds

logger = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("autostop")
@bp.timer_trigger(arg_name="timer", schedule="%AUTOSTOP_SCHEDULE%", run_on_startup=False)
def autostop(timer: func.TimerRequest) -> None:
    rt = get_runtime()
    result = run_autostop(rt.azure, rt.settings.autostop_scope, utcnow())
    logger.info(
        "auto-stop: %d deallocated, %d not due, %d problems",
        len(result.stopped),
        len(result.skipped),
        len(result.problems),
    )
    for problem in result.problems:
        logger.warning("auto-stop problem: %s", problem)


@bp.function_name("watchdog")
@bp.timer_trigger(arg_name="timer", schedule="%WATCHDOG_SCHEDULE%", run_on_startup=False)
def watchdog(timer: func.TimerRequest) -> None:
    resumed = resume_stalled_builds(get_runtime(), utcnow())
    if resumed:
        logger.warning("watchdog: resent the next message of %s", ", ".join(resumed))
