"""Workstations: the API routes (user and automation doors), one queue trigger per working
state, and the timer that enforces quotas and resends lost hops. Each trigger decodes its
input and hands off to shared.workstations."""

from __future__ import annotations

import asyncio
import logging

import azure.functions as func

from functions.api import _base_url
from functions.http import user_and_automation_route
from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.runtime import get_runtime
from shared.state.record import utcnow
from shared.workstations import api, link_pages
from shared.workstations.guard import run_guard
from shared.workstations.links import ROUTE as LINK_ROUTE
from shared.workstations.machine import WORK_QUEUES, WsState
from shared.workstations.runner import fail_from_poison, handle_message

logger = logging.getLogger(__name__)

bp = func.Blueprint()
CONNECTION = "AzureWebJobsStorage"


def _create(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.create(get_runtime(), req.get_body(), _base_url(req), caller, utcnow())


def _batch(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.batch(get_runtime(), req.get_body(), _base_url(req), caller, utcnow())


def _list(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.list_workstations(get_runtime(), dict(req.params), caller, utcnow())


def _get(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.get(get_runtime(), req.route_params["id"], caller, utcnow())


def _start(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.start(get_runtime(), req.route_params["id"], caller, utcnow())


def _stop(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.stop(get_runtime(), req.route_params["id"], caller, utcnow())


def _snooze(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    ws_id = req.route_params["id"]
    return api.snooze(get_runtime(), ws_id, dict(req.params), caller, utcnow())


def _delete(req: func.HttpRequest, caller: Caller) -> ApiResponse:
    return api.delete(get_runtime(), req.route_params["id"], caller, utcnow())


user_and_automation_route(bp, "create_workstation", "workstations", ["POST"], _create)
user_and_automation_route(bp, "create_workstations", "workstations:batch", ["POST"], _batch)
user_and_automation_route(bp, "list_workstations", "workstations", ["GET"], _list)
user_and_automation_route(bp, "get_workstation", "workstations/{id}", ["GET"], _get)
user_and_automation_route(bp, "delete_workstation", "workstations/{id}", ["DELETE"], _delete)
user_and_automation_route(bp, "start_workstation", "workstations/{id}/start", ["POST"], _start)
user_and_automation_route(bp, "stop_workstation", "workstations/{id}/stop", ["POST"], _stop)
user_and_automation_route(bp, "snooze_workstation", "workstations/{id}/snooze", ["POST"], _snooze)


def _register(state: WsState, queue: str) -> None:
    @bp.function_name(f"workstation_{state.value}")
    @bp.queue_trigger(arg_name="msg", queue_name=queue, connection=CONNECTION)
    def work(msg: func.QueueMessage) -> None:
        # Sync with a loop of its own, as the build stages (functions/pipeline.py says why).
        outcome = asyncio.run(handle_message(get_runtime(), msg.get_body()))
        logger.info("%s message %s (delivery %s): %s", queue, msg.id, msg.dequeue_count, outcome)

    @bp.function_name(f"workstation_{state.value}_poison")
    @bp.queue_trigger(arg_name="msg", queue_name=f"{queue}-poison", connection=CONNECTION)
    def poisoned(msg: func.QueueMessage) -> None:
        outcome = fail_from_poison(get_runtime(), msg.get_body(), f"{queue}-poison")
        logger.error("%s-poison message %s: %s", queue, msg.id, outcome)


for _state, _queue in WORK_QUEUES.items():
    _register(_state, _queue)


@bp.function_name("workstation_guard")
@bp.timer_trigger(arg_name="timer", schedule="%WORKSTATION_SCHEDULE%", run_on_startup=False)
def workstation_guard(timer: func.TimerRequest) -> None:
    result = run_guard(get_runtime(), utcnow())
    logger.info(
        "workstations: %d running, %d stopped by quota, %d found stopped, %d hops resent, "
        "%d problems",
        result.running,
        len(result.quota_stopped),
        len(result.reconciled),
        len(result.resent),
        len(result.problems),
        # customDimensions in Application Insights: the workbook's "running now" tile
        extra={"labimage.workstations.running": result.running},
    )


# The one-click links: no function key and no sign-in (the Bicep's authsettings exclude this
# folder); the link's own signature is checked, and it allows only its one action.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _page(status: int, text: str) -> func.HttpResponse:
    return func.HttpResponse(
        text, status_code=status, mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


@bp.function_name("workstation_link")
@bp.route(route=LINK_ROUTE, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def workstation_link(req: func.HttpRequest) -> func.HttpResponse:
    ws_id, action = req.route_params.get("id", ""), req.route_params.get("action", "")
    query = dict(req.params)
    if req.method == "POST":
        return _page(*link_pages.act(get_runtime(), ws_id, action, query, utcnow()))
    return _page(*link_pages.confirm_page(get_runtime(), ws_id, action, query, utcnow()))
