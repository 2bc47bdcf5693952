"""The workstations' timer: quota, reconciliation with the VMs' power, and lost hops.

- A running workstation whose VM was deallocated outside the controller is recorded stopped.
- A running workstation that used up its monthly hours is deallocated and marked so that only
  an administrator can start it again this month.
- A workstation in a working state whose next message is overdue (a send that failed after the
  write) gets that message again, with its current token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared.runtime import Runtime
from shared.workstations import actions, usage
from shared.workstations.machine import WORK_QUEUES, WsState
from shared.workstations.runner import send_hop

logger = logging.getLogger(__name__)


@dataclass
class GuardResult:
    running: int = 0  # after this run
    quota_stopped: list[str] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_guard(rt: Runtime, now: datetime) -> GuardResult:
    result = GuardResult()
    for ws in rt.store.workstations().iter_all():
        try:
            if ws.state in WORK_QUEUES and ws.next_hop_due and now > ws.next_hop_due:
                send_hop(rt, ws, 0)
                result.resent.append(ws.id)
                continue
            if ws.state != WsState.RUNNING:
                continue
            after = actions.reconcile(rt, ws, now)
            if after.state != WsState.RUNNING:
                result.reconciled.append(ws.id)
                continue
            left = usage.quota_left(ws, now)
            if left is not None and left <= 0 and usage.quota_enforced(ws, now):
                hours = ws.spec.monthly_hours
                actions.stop(rt, ws.id, f"monthly quota of {hours:g} h reached", now, quota=True)
                result.quota_stopped.append(ws.id)
                continue
            result.running += 1
        except Exception as exc:  # one workstation never stops the run for the others
            logger.warning("workstation guard: %s: %s", ws.id, exc)
            result.problems.append(f"{ws.id}: {type(exc).__name__}: {exc}")
    return result
