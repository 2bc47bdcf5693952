"""Warnings before a scheduled stop: one JSON POST to the configured webhook per VM and stop.

The notice names the VM, the stop time and a snooze URL. A notice is sent once (recorded in
the actions table); a webhook that fails is logged and tried again at the next scan.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from datetime import datetime

from shared.costguard.actions import CostActions
from shared.costguard.inventory import VmInfo

logger = logging.getLogger(__name__)


def notice(vm: VmInfo, stop_at: datetime, public_url: str | None) -> dict[str, str]:
    base = (public_url or "").rstrip("/")
    return {
        "event": "labimage.autostop.warning",
        "vm_id": vm.id,
        "resource_group": vm.group,
        "name": vm.name,
        "stop_at": stop_at.isoformat(),
        "snooze_url": f"{base}/api/vms/{vm.group}/{vm.name}/snooze?hours=1",
    }


def post_json(url: str, body: dict[str, str], timeout_s: float = 10) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def send_warnings(
    upcoming: list[tuple[VmInfo, datetime]],
    webhook: str,
    public_url: str | None,
    actions: CostActions,
    now: datetime,
    extra: Callable[[VmInfo, datetime], dict[str, str]] | None = None,
) -> list[str]:
    """POST a notice for each upcoming stop not yet announced; the ids notified. `extra` adds
    fields to a VM's notice (a workstation's one-click links)."""
    sent = []
    for vm, stop_at in upcoming:
        if actions.warned(vm.id, stop_at):
            continue
        try:
            body = notice(vm, stop_at, public_url)
            body.update(extra(vm, stop_at) if extra else {})
            post_json(webhook, body)
        except (OSError, ValueError) as exc:
            logger.warning("auto-stop warning for %s not delivered: %s", vm.id, exc)
            continue
        actions.record_warning(vm.id, stop_at, now)
        sent.append(vm.id)
    return sent
