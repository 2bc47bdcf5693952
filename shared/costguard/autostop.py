"""Evening auto-stop: a scan that queues one message per due VM, and the stop of one VM.

The scan never stops a VM itself: one message per VM means one VM's failure (or a slow
deallocate) never holds up the others, and the queue retries it. The stop re-reads the VM and
its tags, so a VM snoozed, started elsewhere, deallocated or deleted since the scan is a no-op.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.azure import vms
from shared.azure.clients import AzureClients
from shared.costguard.actions import CostActions, StopAction
from shared.costguard.costs import report_stop
from shared.costguard.inventory import VmInfo, read_vm, scan_scope
from shared.costguard.prices import PriceTable, default_prices
from shared.costguard.schedule import BadTag, VmSchedule, schedule_from_tags
from shared.errors import PermanentError

logger = logging.getLogger(__name__)

AUTOSTOP_QUEUE = "autostop-vm"
STOPPED_POWER = {"deallocated", "deallocating"}


@dataclass(frozen=True)
class StopOrder:
    """The queue message: which VM, which rule, which stop. No secrets."""

    vm_id: str
    rule: str
    due: datetime

    def to_json(self) -> str:
        return json.dumps({"vm_id": self.vm_id, "rule": self.rule, "due": self.due.isoformat()})

    @classmethod
    def from_json(cls, body: str | bytes) -> StopOrder:
        data = json.loads(body)
        return cls(str(data["vm_id"]), str(data["rule"]), datetime.fromisoformat(data["due"]))


@dataclass
class ScanResult:
    scanned: int = 0
    in_scope: int = 0
    queued: list[str] = field(default_factory=list)
    not_due: int = 0
    already_stopped: int = 0
    problems: list[str] = field(default_factory=list)
    upcoming: list[tuple[VmInfo, datetime]] = field(default_factory=list)  # for warnings


def classify(
    vms_: list[VmInfo], now: datetime, catch_up: timedelta, warn_within: timedelta | None
) -> tuple[ScanResult, list[StopOrder]]:
    """Pure: which VMs are due, which are not, which have malformed tags (no I/O)."""
    result = ScanResult(scanned=len(vms_))
    orders: list[StopOrder] = []
    for vm in vms_:
        try:
            schedule = schedule_from_tags(vm.tags)
        except BadTag as exc:
            result.problems.append(f"{vm.id}: {exc}")
            continue
        except Exception as exc:  # one VM's tags must never stop the scan of the others
            result.problems.append(f"{vm.id}: its auto-stop tags could not be read ({exc!r})")
            continue
        if schedule is None:
            continue
        result.in_scope += 1
        if schedule.rule is None:
            result.not_due += 1
            continue
        due = schedule.due_stop(now, catch_up)
        if due is None:
            result.not_due += 1
            if warn_within is not None and vm.power == "running":
                upcoming = schedule.upcoming_stop(now, warn_within)
                if upcoming is not None:
                    result.upcoming.append((vm, upcoming))
            continue
        if vm.power in STOPPED_POWER:  # a merely powered-off VM still bills: it is stopped
            result.already_stopped += 1
            continue
        orders.append(StopOrder(vm.id, f"autostop {schedule.rule.describe()}", due))
    return result, orders


def scan_autostop(
    azure: AzureClients,
    groups: tuple[str, ...],
    now: datetime,
    send: Callable[[str], None],
    *,
    actions: CostActions | None = None,
    concurrency: int = 8,
    catch_up: timedelta = timedelta(hours=6),
    warn_within: timedelta | None = None,
) -> ScanResult:
    """Scan the scope and `send` one StopOrder JSON per due VM; record malformed tags."""
    inventory = scan_scope(azure, groups, concurrency)
    result, orders = classify(inventory.vms, now, catch_up, warn_within)
    result.problems.extend(inventory.problems)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        sent = pool.map(lambda order: (order, _try_send(send, order)), orders)
        for order, error in sent:
            if error is None:
                result.queued.append(order.vm_id)
            else:
                result.problems.append(f"{order.vm_id}: could not queue the stop: {error}")
    if actions is not None:
        for problem in result.problems:
            vm_id, _, message = problem.partition(": ")
            try:
                actions.record_problem(vm_id, now, message or problem)
            except Exception as exc:  # the record is a report; the scan's work is done
                logger.warning("auto-stop: could not record a problem: %s", exc)
    return result


def _try_send(send: Callable[[str], None], order: StopOrder) -> str | None:
    try:
        send(order.to_json())
    except Exception as exc:
        return type(exc).__name__
    return None


@dataclass(frozen=True)
class StopOutcome:
    stopped: bool
    reason: str


def stop_vm(
    azure: AzureClients,
    actions: CostActions,
    order: StopOrder,
    now: datetime,
    *,
    catch_up: timedelta = timedelta(hours=6),
    prices: PriceTable | None = None,
) -> StopOutcome:
    """Deallocate the VM of `order` if it is still due and running; record what was done.

    A VM deleted or already deallocated, or whose tags no longer make it due, is a no-op.
    TemporaryError propagates (the queue retries); PermanentError is recorded as a problem.
    """
    group, name = _group_and_name(order.vm_id)
    vm = read_vm(azure, group, name)
    if vm is None:
        return StopOutcome(False, "the VM no longer exists")
    if vm.power in STOPPED_POWER:
        return StopOutcome(False, f"the VM is already {vm.power}")
    try:
        schedule: VmSchedule | None = schedule_from_tags(vm.tags)
    except BadTag as exc:
        actions.record_problem(vm.id, now, str(exc))
        return StopOutcome(False, str(exc))
    if schedule is None or schedule.due_stop(now, catch_up) is None:
        return StopOutcome(False, "the VM is no longer due (tag changed or snoozed)")
    try:
        vms.begin_deallocate(azure, name, group)
    except PermanentError as exc:
        # The alert rule "auto-stop could not stop a VM" (infra/monitoring) matches this line.
        logger.warning("auto-stop could not deallocate %s: %s", vm.id, exc)
        actions.record_problem(vm.id, now, f"could not deallocate: {exc}")
        return StopOutcome(False, str(exc))
    table = prices or default_prices()
    action = StopAction(
        vm_id=vm.id,
        at=now,
        rule=order.rule,
        kind="autostop",
        hourly_saved=table.vm_per_hour(vm.size),
        size=vm.size,
        owner=vm.owner,
        project=vm.project,
    )
    actions.record_stop(action, due=order.due)
    report_stop(action.kind, action.hourly_saved)
    logger.info("auto-stop: deallocating %s (%s)", vm.id, order.rule)
    return StopOutcome(True, "deallocating")


def _group_and_name(vm_id: str) -> tuple[str, str]:
    parts = vm_id.strip("/").split("/")
    if len(parts) != 8 or parts[6].lower() != "virtualmachines":
        raise PermanentError(f"{vm_id!r} is not a VM resource id")
    return parts[3], parts[7]
