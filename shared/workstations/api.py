"""The workstations API: create (one or a batch), list, read, start, stop, snooze, delete.
Answers are (status, JSON body) pairs, as the builds API's."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.azure.naming import WORKSTATION_TAG
from shared.costguard import snooze as costguard_snooze
from shared.errors import StepError
from shared.models.names import NVME_MANAGED_IMAGE, nvme_only
from shared.models.problems import RequestRejected
from shared.runtime import Runtime
from shared.ssh.keys import ensure_build_keys
from shared.workstations import actions, usage, views
from shared.workstations import vm as ws_vm
from shared.workstations.image_source import ImageNotUsable, resolve_image
from shared.workstations.machine import IllegalMove, WsState
from shared.workstations.record import Usage, Workstation, WsSpec, new_workstation_id
from shared.workstations.request import (
    WorkstationRequest,
    parse_batch_request,
    parse_workstation_request,
)
from shared.workstations.runner import prepare, send_hop
from shared.workstations.store import WorkstationNotFound

logger = logging.getLogger(__name__)

_WS_ID = re.compile(r"^w[a-z0-9]{9}$")


def _error(status: int, error: str, field: str, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": error, "problems": [{"field": field, "message": message}]})


def _not_found(ws_id: str) -> ApiResponse:
    # The same answer for another owner's workstation, so others' ids do not leak.
    return _error(404, "not found", "id", f"there is no workstation {ws_id[:40]!r}")


def status_url(base_url: str, ws_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/workstations/{ws_id}"


def _load_visible(rt: Runtime, ws_id: str, caller: Caller) -> Workstation | None:
    if not _WS_ID.fullmatch(ws_id):
        return None
    try:
        ws = rt.store.workstations().get(ws_id).ws
    except WorkstationNotFound:
        return None
    return ws if visible(caller, ws) else None


def visible(caller: Caller, ws: Workstation) -> bool:
    """An administrator sees all; a user their own: recorded with their object id, or made for
    their sign-in name by an administrator (a batch knows the names of a course, not its ids)."""
    if caller.is_admin or caller.owns(ws.owner_id):
        return True
    by_name = not ws.owner_id and bool(caller.name) and not caller.key_holder
    return by_name and caller.name.lower() == ws.owner.lower()


def _for_self(caller: Caller, owner: str) -> bool:
    return not caller.key_holder and owner.lower() == caller.name.lower()


def create(rt: Runtime, body: bytes, base_url: str, caller: Caller, now: datetime) -> ApiResponse:
    """POST /api/workstations: validate, resolve the image, record, queue the creation."""
    try:
        request = parse_workstation_request(body)
    except RequestRejected as exc:
        return ApiResponse(exc.http_status, exc.to_body())
    if not _for_self(caller, request.owner) and not caller.is_admin:
        return _error(
            400, "invalid request", "owner", f"owner must be your user name {caller.name!r}"
        )
    answer = _create_one(rt, request, base_url, caller, now)
    return answer


def batch(rt: Runtime, body: bytes, base_url: str, caller: Caller, now: datetime) -> ApiResponse:
    """POST /api/workstations:batch: one workstation per owner, each on its own (one owner's
    failure is reported for that owner and the others go on). Administrators only."""
    try:
        request = parse_batch_request(body)
    except RequestRejected as exc:
        return ApiResponse(exc.http_status, exc.to_body())
    if not caller.is_admin:
        return _error(403, "forbidden", "owners", "a batch needs the labimage.admin app role")
    results: list[dict[str, Any]] = []
    for index, owner in enumerate(request.owners):
        try:
            answer = _create_one(rt, request.one(owner), base_url, caller, now)
        except Exception as exc:  # each owner is independent
            logger.exception("batch: workstation for owner %d failed", index)
            answer = _error(503, "unavailable", "", f"{type(exc).__name__}: could not record it")
        entry: dict[str, Any] = {"owner": owner, "status": answer.status, **answer.body}
        if "problems" in entry:
            entry["problems"] = [
                {**p, "field": f"owners[{index}]" if p["field"] == "owner" else p["field"]}
                for p in entry["problems"]
            ]
        results.append(entry)
    accepted = sum(1 for r in results if r["status"] == 202)
    return ApiResponse(202 if accepted else 400, {"accepted": accepted, "workstations": results})


def _create_one(
    rt: Runtime, request: WorkstationRequest, base_url: str, caller: Caller, now: datetime
) -> ApiResponse:
    try:
        image = resolve_image(request.image, rt.store, rt.azure, caller)
    except ImageNotUsable as exc:
        return _error(400, "invalid request", exc.field, str(exc))
    except StepError as exc:
        return _error(503, "unavailable", "image", f"the image could not be read: {exc}")
    size = request.size or image.size
    if "/providers/microsoft.compute/images/" in image.image_id.lower() and nvme_only(size):
        why = f"{NVME_MANAGED_IMAGE}: choose a v5 size, or an image in a gallery"
        return _error(400, "invalid request", "size", f"{size}: {why}")
    disk = image.data_disk
    if request.data_disk is not None:
        if disk is None:
            why = "the image's data disk is unknown: no labimage build on record made it"
            return _error(400, "invalid request", "data_disk", why)
        if request.data_disk.size_gb < disk.size_gb:
            why = f"at least {disk.size_gb} GB: Azure makes no disk smaller than its image's"
            return _error(400, "invalid request", "data_disk.size_gb", why)
    autostop = request.autostop
    spec = WsSpec(
        image_id=image.image_id,
        image_source=image.source,
        security_type=image.security_type,
        size=size,
        admin_username=request.admin_username or image.admin_username,
        project=request.project or "workstations",
        autostop=f"{autostop.time} {autostop.time_zone}" if autostop.enabled else "off",
        idle_minutes=request.idle_minutes,
        monthly_hours=request.monthly_hours,
        data_disk_lun=disk.lun if disk else 0,
        data_disk_mount=(disk.mount_point, disk.filesystem) if disk else None,
        data_disk_gb=request.data_disk.size_gb if request.data_disk else None,
    )
    ws = Workstation(
        id=new_workstation_id(),
        owner=request.owner,
        owner_id=caller.object_id if _for_self(caller, request.owner) else "",
        spec=spec,
        usage=Usage(month=usage.month_of(now)),
    ).with_event(f"accepted: from {image.source}")
    ensure_build_keys(rt.keys, ws.id)
    ws = prepare(ws, 0)
    store = rt.store.workstations()
    try:
        store.create(ws)
    except Exception:
        rt.keys.delete(ws.id)  # nothing of a workstation that was never recorded stays
        raise
    send_hop(rt, ws, 0)  # should it fail, the workstations' timer sends it again
    logger.info("workstation %s accepted for %s", ws.id, ws.owner)
    return ApiResponse(202, {"id": ws.id, "status_url": status_url(base_url, ws.id)})


def list_workstations(
    rt: Runtime, query: dict[str, str], caller: Caller, now: datetime
) -> ApiResponse:
    """A user's own; an administrator's all (or one owner's with ?owner=)."""
    owner = query.get("owner") or None
    if owner and not caller.is_admin and owner.lower() != caller.name.lower():
        return _error(403, "forbidden", "owner", "you may list your own workstations only")
    found = [w for w in rt.store.workstations().list() if visible(caller, w)]
    if owner:
        found = [w for w in found if w.owner.lower() == owner.lower()]
    if query.get("state"):
        if query["state"] not in {s.value for s in WsState}:
            states = ", ".join(s.value for s in WsState)
            return _error(400, "invalid request", "state", f"state must be one of {states}")
        found = [w for w in found if w.state.value == query["state"]]
    return ApiResponse(200, {"workstations": [views.summary(w, now) for w in found]})


def get(rt: Runtime, ws_id: str, caller: Caller, now: datetime) -> ApiResponse:
    ws = _load_visible(rt, ws_id, caller)
    if ws is None:
        return _not_found(ws_id)
    ws = actions.reconcile(rt, ws, now)
    return ApiResponse(200, views.status(ws, now, rt.settings, rt.keys))


def _act(rt: Runtime, ws_id: str, caller: Caller, now: datetime, act: Any) -> ApiResponse:
    ws = _load_visible(rt, ws_id, caller)
    if ws is None:
        return _not_found(ws_id)
    try:
        after = act(ws)
    except IllegalMove as exc:
        return _error(409, "conflict", "state", str(exc))
    except actions.Busy:
        return _error(503, "busy", "", "the workstation is changing fast; try again")
    except StepError as exc:
        return _error(503, "unavailable", "", str(exc))
    return ApiResponse(202, views.summary(after, now))


def start(rt: Runtime, ws_id: str, caller: Caller, now: datetime) -> ApiResponse:
    """Start a stopped workstation; past its monthly quota only an administrator may, and then
    the quota is waived for the rest of the month."""

    def act(ws: Workstation) -> Workstation:
        if usage.quota_blocks_start(ws, now):
            if not caller.is_admin:
                raise _QuotaSpent(ws)
            return actions.start(rt, ws.id, waive_quota=True, now=now)
        return actions.start(rt, ws.id)

    try:
        return _act(rt, ws_id, caller, now, act)
    except _QuotaSpent as exc:
        hours = exc.ws.spec.monthly_hours
        return _error(
            409,
            "conflict",
            "monthly_hours",
            f"this month's quota of {hours:g} h is used up; an administrator can start it",
        )


class _QuotaSpent(Exception):
    def __init__(self, ws: Workstation) -> None:
        super().__init__(ws.id)
        self.ws = ws


def stop(rt: Runtime, ws_id: str, caller: Caller, now: datetime) -> ApiResponse:
    who = caller.name or "an administrator (function key)"
    return _act(
        rt, ws_id, caller, now, lambda ws: actions.stop(rt, ws.id, f"stopped by {who}", now)
    )


def delete(rt: Runtime, ws_id: str, caller: Caller, now: datetime) -> ApiResponse:
    return _act(rt, ws_id, caller, now, lambda ws: actions.delete(rt, ws.id))


def snooze(
    rt: Runtime, ws_id: str, query: dict[str, str], caller: Caller, now: datetime
) -> ApiResponse:
    """Postpone tonight's auto-stop of a running workstation by `hours`."""
    ws = _load_visible(rt, ws_id, caller)
    if ws is None:
        return _not_found(ws_id)
    try:
        hours = costguard_snooze.parse_hours(query.get("hours"), rt.settings.snooze_max_hours)
    except costguard_snooze.SnoozeRefused as exc:
        return _error(400, "invalid request", exc.field, str(exc))
    return snooze_running(rt, ws, hours, now)


def snooze_running(rt: Runtime, ws: Workstation, hours: int | None, now: datetime) -> ApiResponse:
    """Snooze by `hours`, or skip tonight's stop when `hours` is None."""
    if ws.state != WsState.RUNNING:
        return _error(409, "conflict", "state", f"a {ws.state} workstation has no stop to snooze")
    vm_name = ws_vm.names_of(ws.id)[1].vm
    group = rt.settings.resource_group
    mine = lambda tags: tags.get(WORKSTATION_TAG) == ws.id  # noqa: E731
    try:
        if hours is None:
            done = costguard_snooze.skip_today(rt.azure, group, vm_name, now, mine)
        else:
            done = costguard_snooze.snooze(rt.azure, group, vm_name, hours, now, mine)
    except costguard_snooze.SnoozeRefused as exc:
        return _error(400, "invalid request", exc.field, str(exc))
    except costguard_snooze.NoSuchVm:
        return _not_found(ws.id)
    except StepError as exc:
        return _error(503, "unavailable", "", str(exc))
    return ApiResponse(
        200,
        {
            "id": ws.id,
            "stop_at": done.stop_at.isoformat() if done.stop_at else None,
            "skipped_today": done.stop_at is None,
        },
    )
