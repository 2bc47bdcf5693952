"""Timer triggers: NCRONTAB (six fields, seconds first) or TimeSpan schedules, in UTC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from localcloud.funchost.appindex import FunctionSpec
from localcloud.funchost.hostconfig import parse_timespan
from localcloud.funchost.invoke import Invoker

log = logging.getLogger("localcloud.funchost")

PAST_DUE_TOLERANCE = timedelta(seconds=1)


class Schedule:
    """Next occurrences of an NCRONTAB expression or of a fixed TimeSpan interval."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._interval: timedelta | None = None
        if ":" in expression and " " not in expression.strip():
            self._interval = timedelta(seconds=parse_timespan(expression))
        elif not croniter.is_valid(expression, second_at_beginning=True):
            raise ValueError(f"invalid NCRONTAB schedule: {expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        if self._interval is not None:
            return moment + self._interval
        cron = croniter(self.expression, moment, second_at_beginning=True)
        result: datetime = cron.get_next(datetime)
        return result


def timer_request(past_due: bool, last: datetime | None, next_: datetime) -> TimerRequest:
    now = datetime.now(UTC)
    return TimerRequest(
        past_due=past_due,
        schedule_status={
            "Last": (last or now).isoformat(),
            "Next": next_.isoformat(),
            "LastUpdated": now.isoformat(),
        },
        schedule={"AdjustForDST": True},
    )


class TimerListener:
    """Fires one timer function on its schedule; invocations of one timer never overlap."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker) -> None:
        assert spec.schedule
        self.spec = spec
        self.schedule = Schedule(spec.schedule)
        self._invoker = invoker

    async def run(self) -> None:
        last: datetime | None = None
        now = datetime.now(UTC)
        due = self.schedule.next_after(now)
        if self.spec.run_on_startup:
            await self._fire(False, last, due, "startup")
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            now = datetime.now(UTC)
            past_due = now - due > PAST_DUE_TOLERANCE
            following = self.schedule.next_after(max(now, due))
            await self._fire(past_due, last, following, "timer")
            last = due
            due = self.schedule.next_after(max(datetime.now(UTC), due))

    async def _fire(self, past_due: bool, last: datetime | None, next_: datetime, why: str) -> None:
        # A failure is logged by the invoker; the next occurrence fires regardless.
        with contextlib.suppress(Exception):
            await self._invoker.invoke(self.spec, timer_request(past_due, last, next_), why)
