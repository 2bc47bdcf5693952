"""What the cost-guard triggers call: each takes the process Runtime and does one job."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from azure.core.credentials import TokenCredential

from shared.api.builds import ApiResponse
from shared.api.caller import ADMIN_ROLE, Caller
from shared.azure.naming import BUILD_TAG
from shared.costguard import autostop, costs, notify, snooze, sweeper
from shared.costguard.actions import CostActions
from shared.costguard.autostop import AUTOSTOP_QUEUE, ScanResult, StopOrder, StopOutcome
from shared.costguard.idle_stop import IdleResult, run_idle_stop
from shared.costguard.prices import default_prices
from shared.errors import StepError
from shared.runtime import Runtime
from shared.state.store import BuildNotFound
from shared.workstations.actions import stopped_by_guard
from shared.workstations.link_pages import warning_extras
from shared.workstations.views import month_costs

logger = logging.getLogger(__name__)


@cache
def _actions(connection: str, table: str, credential: TokenCredential) -> CostActions:
    return CostActions.from_connection_string(connection, table, credential)


def actions_of(rt: Runtime) -> CostActions:
    """The cost-actions table on the storage account, reached as the builds table is (the
    identity signs in when the connection has no key); made once per connection and table."""
    s = rt.settings
    return _actions(s.storage_connection, s.costs_table, rt.azure.credential)


def run_autostop_scan(rt: Runtime, now: datetime) -> ScanResult:
    """Queue one stop per due VM; warn about stops coming within the warning window."""
    s = rt.settings
    actions = actions_of(rt)
    warn = timedelta(minutes=s.autostop_warn_minutes) if s.autostop_webhook_url else None
    result = autostop.scan_autostop(
        rt.azure,
        s.autostop_scope,
        now,
        lambda body: rt.bus.send_raw(AUTOSTOP_QUEUE, body),
        actions=actions,
        concurrency=s.autostop_concurrency,
        catch_up=timedelta(hours=s.autostop_catch_up_hours),
        warn_within=warn,
    )
    if s.autostop_webhook_url and result.upcoming:
        notify.send_warnings(
            result.upcoming,
            s.autostop_webhook_url,
            s.public_url,
            actions,
            now,
            extra=lambda vm, stop_at: warning_extras(rt, vm.tags, stop_at),
        )
    return result


def handle_stop_message(rt: Runtime, body: str | bytes, now: datetime) -> StopOutcome:
    order = StopOrder.from_json(body)
    outcome = autostop.stop_vm(
        rt.azure,
        actions_of(rt),
        order,
        now,
        catch_up=timedelta(hours=rt.settings.autostop_catch_up_hours),
    )
    if outcome.stopped:  # a workstation's VM: its record says stopped, and why
        stopped_by_guard(rt, order.vm_id, "auto-stop", now)
    return outcome


def run_sweeper(rt: Runtime, now: datetime) -> sweeper.SweepResult:
    return sweeper.sweep(
        rt.azure,
        rt.store,
        actions_of(rt),
        now,
        grace=timedelta(hours=rt.settings.sweeper_grace_hours),
    )


async def run_idle(rt: Runtime, now: datetime) -> IdleResult:
    return await run_idle_stop(rt, actions_of(rt), now)


def _error(status: int, field: str, message: str) -> ApiResponse:
    error = "invalid request" if status == 400 else "not found"
    return ApiResponse(status, {"error": error, "problems": [{"field": field, "message": message}]})


# Costs are asked for about builds: far-off dates are mistakes, and near the ends of what
# datetime holds a time zone's offset overflows (OverflowError, not a 400).
_YEARS = range(2000, 2100)


def _instant(value: str, field: str) -> datetime:
    """`value` as an aware time in the years 2000-2099; SnoozeRefused naming `field` else."""
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise snooze.SnoozeRefused(
            field, f"{field} must be a date (YYYY-MM-DD) or ISO time"
        ) from None
    if parsed.year not in _YEARS:
        raise snooze.SnoozeRefused(field, f"{field} must be in the years 2000 to 2099")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def costs_api(rt: Runtime, query: dict[str, str], now: datetime, caller: Caller) -> ApiResponse:
    """GET /api/costs?from=&to=: the summary (every owner's: administrators only); 400 naming
    the field for a bad date."""
    if not caller.is_admin:
        return ApiResponse(
            403,
            {
                "error": "forbidden",
                "problems": [{"field": "", "message": f"costs need the {ADMIN_ROLE} app role"}],
            },
        )
    start, end = costs.default_range(now)
    try:
        if query.get("from"):
            start = _instant(query["from"], "from")
        if query.get("to"):
            end = _instant(query["to"], "to")
    except snooze.SnoozeRefused as exc:
        return _error(400, exc.field, str(exc))
    if end <= start:
        return _error(400, "to", "to must be after from")
    body = costs.summarise(
        costs.all_builds(rt.store), actions_of(rt), default_prices(), start, end, now
    )
    body["workstations"] = month_costs(rt.store.workstations().list(), now)
    return ApiResponse(200, body)


def may_snooze(rt: Runtime, caller: Caller, group: str, tags: dict[str, str]) -> bool:
    """A user: only a VM of one of their own builds (its labimage-build tag). An administrator
    or key holder: a VM labimage made, or any VM in the auto-stop groups. Never another VM."""
    build_id = next((v for k, v in tags.items() if k.lower() == BUILD_TAG), "")
    if caller.is_admin:
        scope = {g.lower() for g in rt.settings.autostop_scope}
        return bool(build_id) or group.lower() in scope or "*" in scope
    if not build_id:
        return False
    try:
        return caller.owns(rt.store.get(build_id).build.owner_id)
    except BuildNotFound:
        return False


def snooze_api(
    rt: Runtime, group: str, name: str, query: dict[str, str], now: datetime, caller: Caller
) -> ApiResponse:
    """POST /api/vms/{group}/{name}/snooze?hours=N."""
    s = rt.settings
    try:
        hours = snooze.parse_hours(query.get("hours"), s.snooze_max_hours)
        done = snooze.snooze(
            rt.azure, group, name, hours, now, lambda tags: may_snooze(rt, caller, group, tags)
        )
    except snooze.SnoozeRefused as exc:
        return _error(400, exc.field, str(exc))
    except snooze.NoSuchVm:
        return _error(404, "name", f"there is no VM {name!r} in {group!r} you may snooze")
    except StepError as exc:
        return ApiResponse(
            503, {"error": "unavailable", "problems": [{"field": "", "message": str(exc)}]}
        )
    body: dict[str, Any] = {
        "vm_id": done.vm_id,
        "stop_at": done.stop_at.isoformat() if done.stop_at else None,
        "skipped_today": done.stop_at is None,
    }
    return ApiResponse(200, body)
