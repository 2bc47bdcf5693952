"""Cost guards: evening auto-stop (scan + one stop per queue message), idle stop, leak sweeper,
and the costs and snooze routes. Each trigger decodes its input and hands off to
shared.costguard.service."""

from __future__ import annotations

import asyncio
import logging

import azure.functions as func

from functions.http import user_and_automation_route
from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.costguard import service
from shared.costguard.autostop import AUTOSTOP_QUEUE
from shared.runtime import get_runtime
from shared.state.record import utcnow

logger = logging.getLogger(__name__)

bp = func.Blueprint()
CONNECTION = "AzureWebJobsStorage"


@bp.function_name("autostop")
@bp.timer_trigger(arg_name="timer", schedule="%AUTOSTOP_SCHEDULE%", run_on_startup=False)
def autostop(timer: func.TimerRequest) -> None:
    result = service.run_autostop_scan(get_runtime(), utcnow())
    logger.info(
        "auto-stop scan: %d VMs, %d in scope, %d stops queued, %d not due, %d already stopped, "
        "%d problems",
        result.scanned,
        result.in_scope,
        len(result.queued),
        result.not_due,
        result.already_stopped,
        len(result.problems),
    )
    for problem in result.problems[:50]:
        logger.warning("auto-stop problem: %s", problem)


@bp.function_name("autostop_vm")
@bp.queue_trigger(arg_name="msg", queue_name=AUTOSTOP_QUEUE, connection=CONNECTION)
def autostop_vm(msg: func.QueueMessage) -> None:
    outcome = service.handle_stop_message(get_runtime(), msg.get_body(), utcnow())
    logger.info("auto-stop message %s (delivery %s): %s", msg.id, msg.dequeue_count, outcome.reason)


@bp.function_name("idle_stop")
@bp.timer_trigger(arg_name="timer", schedule="%IDLE_SCHEDULE%", run_on_startup=False)
def idle_stop(timer: func.TimerRequest) -> None:
    # Sync, with the probes' asyncssh work on a loop of its own: the scan and the deallocations
    # block, and on the worker's shared loop they would stall every build's SSH work.
    result = asyncio.run(service.run_idle(get_runtime(), utcnow()))
    logger.info(
        "idle stop: %d stopped, %d active, %d problems",
        len(result.stopped),
        len(result.active),
        len(result.problems),
    )
    for problem in result.problems[:50]:
        logger.warning("idle stop problem: %s", problem)


@bp.function_name("sweeper")
@bp.timer_trigger(arg_name="timer", schedule="%SWEEPER_SCHEDULE%", run_on_startup=False)
def sweeper(timer: func.TimerRequest) -> None:
    result = service.run_sweeper(get_runtime(), utcnow())
    logger.info(
        "sweeper: %d deleted, %d could not be deleted, %d protected, %d builds not yet due",
        len(result.deleted),
        len(result.failed),
        len(result.protected),
        len(result.waiting),
    )
    for resource_id, why in result.failed:
        logger.warning("sweeper could not delete %s: %s (delete it by hand)", resource_id, why)


def _costs(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return service.costs_api(get_runtime(), dict(req.params), utcnow(), caller)


def _snooze(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    group, name = req.route_params["resource_group"], req.route_params["name"]
    return service.snooze_api(get_runtime(), group, name, dict(req.params), utcnow(), caller)


user_and_automation_route(bp, "get_costs", "costs", ["GET"], _costs)
user_and_automation_route(bp, "snooze_vm", "vms/{resource_group}/{name}/snooze", ["POST"], _snooze)
