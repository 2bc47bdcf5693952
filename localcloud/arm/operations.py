"""ARM's long-running operations: status resources polled through Azure-AsyncOperation."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from localcloud.arm.errors import ArmError
from localcloud.arm.store import Store

logger = logging.getLogger(__name__)

Failed = Callable[[ArmError], None]  # told why the operation ended Failed
Work = Callable[[], Awaitable[None]]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class Operations:
    """Starts background work and keeps `{"name","status","startTime","endTime","error"}`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tasks: set[asyncio.Task[None]] = set()
        self._doomed: dict[str, ArmError] = {}  # operations a fault plan makes end Failed

    def start(
        self,
        work: Work | None,
        on_failure: Failed | None = None,
        least_seconds: float = 0.0,
    ) -> str:
        """Record a new InProgress operation, run `work` in the background, return its id.

        The operation stays InProgress for at least `least_seconds` (Azure's operations take
        their time, see localcloud.arm.durations); `work` runs after that wait, so what it
        changes shows when the operation ends. `work` None with no wait means the change is
        already done: the operation is Succeeded at once.
        """
        op_id = str(uuid.uuid4())
        record: dict[str, Any] = {"name": op_id, "status": "InProgress", "startTime": now_iso()}
        self._store.operations[op_id] = record
        if work is None and least_seconds <= 0:
            self._finish(record, None)
        else:
            task = asyncio.get_running_loop().create_task(
                self._run(record, work, on_failure, least_seconds)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return op_id

    def get(self, op_id: str) -> dict[str, Any] | None:
        return self._store.operations.get(op_id)

    def fail(self, op_id: str, error: ArmError) -> None:
        """Make operation `op_id` end Failed with `error` (a fault plan's `lro_failed`): at
        once when it has already ended, else when its work is done."""
        record = self._store.operations.get(op_id)
        if record is None:
            return
        if record["status"] == "InProgress":
            self._doomed[op_id] = error
        else:
            record.pop("error", None)
            self._finish(record, error)

    def fail_interrupted(self) -> None:
        """After a restart, work that was running is gone: mark its operations Failed."""
        for record in self._store.operations.values():
            if record["status"] == "InProgress":
                self._finish(
                    record,
                    ArmError(500, "InternalExecutionError", "The emulator restarted mid-way."),
                )

    async def drain(self) -> None:
        """Wait for every background operation (used at shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(
        self,
        record: dict[str, Any],
        work: Work | None,
        on_failure: Failed | None,
        least_seconds: float,
    ) -> None:
        try:
            if least_seconds > 0:
                await asyncio.sleep(least_seconds)
            if work is not None:
                await work()
        except ArmError as error:
            self._finish(record, error)
            if on_failure:
                on_failure(error)
        except Exception as error:  # the operation must end Failed, whatever went wrong
            logger.exception("operation %s failed", record["name"])
            internal = ArmError(500, "InternalExecutionError", f"{type(error).__name__}: {error}")
            self._finish(record, internal)
            if on_failure:
                on_failure(internal)
        else:
            self._finish(record, None)

    def _finish(self, record: dict[str, Any], error: ArmError | None) -> None:
        error = error or self._doomed.pop(record["name"], None)
        record["endTime"] = now_iso()
        if error is None:
            record["status"] = "Succeeded"
        else:
            record["status"] = "Failed"
            record["error"] = error.body()["error"]
        self._store.touch()
