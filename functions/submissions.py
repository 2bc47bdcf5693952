"""Submissions from the build-requests queue (see shared/api/queue_submit.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.api.queue_submit import UndecodableMessage, handle_request_message
from shared.runtime import get_runtime

logger = logging.getLogger(__name__)

bp = func.Blueprint()
CONNECTION = "AzureWebJobsStorage"


@bp.function_name("submit_from_queue")
@bp.queue_trigger(arg_name="msg", queue_name="%BUILD_REQUESTS_QUEUE%", connection=CONNECTION)
def submit_from_queue(msg: func.QueueMessage) -> None:
    try:
        outcome = handle_request_message(
            get_runtime(), msg.get_body(), msg.id or "", msg.dequeue_count or 1
        )
    except UndecodableMessage as exc:
        # Raised: the host retries, then moves the message to <queue>-poison.
        logger.warning(
            "build request %s (delivery %s) cannot be decoded: %s; it goes to poison after "
            "the last delivery",
            msg.id,
            msg.dequeue_count,
            exc,
        )
        raise
    logger.info("build request %s (delivery %s): %s", msg.id, msg.dequeue_count, outcome)
