"""Queues: one trigger per stage (build-<stage>), cleanup, and a poison handler for each.

The handlers are sync on purpose. The Python worker runs every `async def` on its one event
loop and every `def` in its thread pool; a stage makes blocking calls (the Azure SDK, Table and
Queue clients) between its asyncssh work, so on the shared loop one build's slow ARM call would
stall every other build's SSH session. Each invocation instead runs its stage on a loop of its
own, in its own worker thread.
"""

from __future__ import annotations

import asyncio
import logging

import azure.functions as func

from shared.pipeline import fail_from_poison, handle_stage_message
from shared.runtime import get_runtime
from shared.state.machine import PIPELINE, Stage, queue_name

logger = logging.getLogger(__name__)

bp = func.Blueprint()
CONNECTION = "AzureWebJobsStorage"


def _register(stage: Stage) -> None:
    queue = queue_name(stage)

    @bp.function_name(f"stage_{stage.value}")
    @bp.queue_trigger(arg_name="msg", queue_name=queue, connection=CONNECTION)
    def run_stage(msg: func.QueueMessage) -> None:
        logger.info("%s message %s (delivery %s)", queue, msg.id, msg.dequeue_count)
        asyncio.run(handle_stage_message(get_runtime(), msg.get_body()))

    @bp.function_name(f"poison_{stage.value}")
    @bp.queue_trigger(arg_name="msg", queue_name=f"{queue}-poison", connection=CONNECTION)
    def fail_poisoned(msg: func.QueueMessage) -> None:
        logger.error("%s-poison message %s: failing its build", queue, msg.id)
        asyncio.run(fail_from_poison(get_runtime(), msg.get_body(), f"{queue}-poison"))


for _stage in (*PIPELINE, Stage.CLEANUP):
    _register(_stage)
