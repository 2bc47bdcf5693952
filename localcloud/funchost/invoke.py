"""Call a user function the way the Python worker does, and log one line per invocation."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func

from localcloud.funchost.appindex import FunctionSpec
from localcloud.funchost.storage import QueueClients, encode_body

log = logging.getLogger("localcloud.funchost")


class InvocationContext(func.Context):
    """The `context` argument a function may declare."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None

    @property
    def thread_local_storage(self) -> Any:
        return None


class OutValue(func.Out[Any]):
    """An output binding argument (`func.Out[...]`): whatever the function `set`s."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def worker_thread_count(env: Mapping[str, str] | None = None) -> int:
    """The Python worker's pool for sync functions: `PYTHON_THREADPOOL_THREAD_COUNT`, else
    `ThreadPoolExecutor`'s default since Python 3.9, min(32, cpu + 4) (RULES.md section 3:
    functions-app-settings.md; the worker's dispatcher.py)."""
    value = (env if env is not None else os.environ).get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    if value.strip().isdigit() and int(value) > 0:
        return min(32, int(value))
    return min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    """Runs functions as the Python worker does: every `async def` on the host's one event loop
    (the loop its HTTP server and queue listeners run on, so a blocking call there stalls them
    all), every `def` in a thread pool of `worker_thread_count()` threads.

    After every invocation, successful or not, `on_finished` is called; the host uses it to wake
    idle queue listeners, as the real host's shared queue watcher does for messages it sends.
    """

    def __init__(
        self,
        app_dir: str,
        queues: QueueClients,
        message_encoding: str,
        max_threads: int,
        on_finished: Callable[[], None] = lambda: None,
    ) -> None:
        self._app_dir = app_dir
        self._queues = queues
        self._encoding = message_encoding
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="function")
        self._on_finished = on_finished

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str = "") -> Any:
        """Run `spec` with its trigger argument; return its result or raise what it raised.

        Queue output bindings are sent only after the function returned without error.
        """
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {spec.trigger_param: trigger_value}
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, self._app_dir)
        outs = {o.param: OutValue() for o in spec.queue_outputs if o.param != "$return"}
        kwargs.update(outs)
        started = time.monotonic()
        outcome, detail = "Succeeded", ""
        try:
            if spec.is_async:
                result = await spec.user_function(**kwargs)
            else:
                # copy_context keeps contextvars (logging adapters, tracing) like the worker does.
                call = functools.partial(
                    contextvars.copy_context().run, spec.user_function, **kwargs
                )
                result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
            await self._send_outputs(spec, outs, result)
            return result
        except BaseException as err:
            outcome = "Failed"
            detail = f" error={type(err).__name__}: {_first_line(err)}"
            raise
        finally:
            duration_ms = (time.monotonic() - started) * 1000
            log.info(
                "Executed '%s' (%s, Id=%s, Duration=%.0fms)%s%s",
                spec.name,
                outcome,
                invocation_id,
                duration_ms,
                f" reason={reason}" if reason else "",
                detail,
            )
            self._on_finished()

    async def _send_outputs(
        self, spec: FunctionSpec, outs: dict[str, OutValue], result: Any
    ) -> None:
        for output in spec.queue_outputs:
            value = result if output.param == "$return" else outs[output.param].get()
            if value is None:
                continue
            client = await self._queues.ensure_queue(output.connection, output.queue_name)
            for item in value if isinstance(value, list) else [value]:
                await client.send_message(encode_body(item, self._encoding))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""
