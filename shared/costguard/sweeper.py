"""The leak sweeper: delete what finished builds and deleted workstations left, and only that.

A resource is a candidate only when it carries `labimage-build=<id>` and that build is
finished (succeeded, failed, cancelled) or unknown, and older than the grace period. It is
never touched when it is untagged, marked kept on a succeeded build's record, a VM of a
succeeded build carrying the auto-stop tag (a kept VM), or a succeeded build's image.
A resource tagged `labimage-workstation=<id>` is a candidate only when that workstation is
deleted (or unknown) and older than the grace period: a workstation whose delete failed midway
leaks nothing for long. Deletion follows shared.azure.resources.DELETE_ORDER, one type at a
time, with retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError

from shared.azure import resources
from shared.azure.boundary import arm_call
from shared.azure.clients import AzureClients
from shared.azure.naming import AUTOSTOP_TAG, BUILD_TAG, WORKSTATION_TAG
from shared.costguard.actions import CostActions
from shared.errors import StepError
from shared.state.record import Build, BuildState
from shared.state.store import BuildNotFound, BuildStore
from shared.workstations.machine import WsState
from shared.workstations.record import Workstation
from shared.workstations.store import WorkstationNotFound, WorkstationStore

logger = logging.getLogger(__name__)

IMAGE_TYPES = {
    "microsoft.compute/images",
    "microsoft.compute/galleries/images/versions",
    "microsoft.compute/galleries/images",
    "microsoft.compute/galleries",
}
VM_TYPE = "microsoft.compute/virtualmachines"


@dataclass(frozen=True)
class Tagged:
    id: str
    type: str
    tags: dict[str, str]
    created: datetime | None = None

    @property
    def build_id(self) -> str:
        return self.tags.get(BUILD_TAG, "")

    @property
    def workstation_id(self) -> str:
        return self.tags.get(WORKSTATION_TAG, "")


@dataclass
class SweepResult:
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (resource id, why)
    protected: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # builds/workstations alive or within grace


def list_tagged(azure: AzureClients, group: str) -> list[Tagged]:
    """Every resource of `group` that carries the build or the workstation tag, with its tags
    and creation time.

    Listed per resource group without a filter and filtered here: with a tag filter Resource
    Manager returns no tags and may drop `$expand` (Resources REST spec, `resources.list`),
    and the tags are what the sweeper decides by."""
    found = []
    with arm_call(f"list resources of {group}"):
        try:
            items = list(
                azure.resources.resources.list_by_resource_group(group, expand="createdTime")
            )
        except ResourceNotFoundError:
            items = []  # no such group: nothing leaked there
    for item in items:
        tags = dict(item.tags or {})
        if not tags.get(BUILD_TAG) and not tags.get(WORKSTATION_TAG):
            continue
        created = getattr(item, "created_time", None)
        found.append(Tagged(str(item.id), str(item.type), tags, created))
    return found


def protected_reason(resource: Tagged, build: Build | None) -> str | None:
    """Why the sweeper must leave `resource` alone, or None when it may go."""
    if not resource.build_id:
        return "untagged"
    if build is None or build.state != BuildState.SUCCEEDED:
        return None
    kind = resource.type.lower()
    if kind in IMAGE_TYPES:
        return "the image of a succeeded build"
    if any(r.kept and r.id.lower() == resource.id.lower() for r in build.resources):
        return "kept by its build"
    if kind == VM_TYPE and AUTOSTOP_TAG in resource.tags:
        return "a kept VM (auto-stop tag)"
    return None


def eligible_build(
    build: Build | None, first_seen: datetime | None, now: datetime, grace: timedelta
) -> bool:
    """Finished (or unknown) and older than the grace period."""
    if build is not None:
        return build.state.terminal and now - build.updated_at >= grace
    return first_seen is not None and now - first_seen >= grace


def eligible_workstation(
    ws: Workstation | None, first_seen: datetime | None, now: datetime, grace: timedelta
) -> bool:
    """Deleted (or unknown) and older than the grace period; a live one keeps everything."""
    if ws is not None:
        return ws.state == WsState.DELETED and now - ws.updated_at >= grace
    return first_seen is not None and now - first_seen >= grace


def sweep(
    azure: AzureClients,
    store: BuildStore,
    actions: CostActions,
    now: datetime,
    *,
    grace: timedelta = timedelta(hours=2),
    attempts: int = 3,
    wait_s: float = 120,
    sleep: Callable[[float], None] = time.sleep,
) -> SweepResult:
    """Delete leaked resources of finished builds and of deleted workstations (in the build
    resource group); record every deletion and every failure."""
    result = SweepResult()
    workstations = store.workstations()
    by_build: dict[str, list[Tagged]] = {}
    by_ws: dict[str, list[Tagged]] = {}
    for resource in list_tagged(azure, azure.settings.resource_group):
        if resource.build_id:
            by_build.setdefault(resource.build_id, []).append(resource)
        else:
            by_ws.setdefault(resource.workstation_id, []).append(resource)
    for build_id, tagged in sorted(by_build.items()):
        build = _load(store, build_id)
        first_seen = _first_seen(actions, build is None, build_id, tagged, now)
        if not eligible_build(build, first_seen, now, grace):
            result.waiting.append(build_id)
            continue
        doomed = []
        for resource in tagged:
            reason = protected_reason(resource, build)
            if reason:
                result.protected.append(resource.id)
            else:
                doomed.append(resource)
        _delete_in_order(azure, actions, build_id, doomed, now, result, attempts, wait_s, sleep)
    for ws_id, tagged in sorted(by_ws.items()):
        ws = _load_workstation(workstations, ws_id)
        first_seen = _first_seen(actions, ws is None, ws_id, tagged, now)
        if not eligible_workstation(ws, first_seen, now, grace):
            result.waiting.append(ws_id)
            continue
        _delete_in_order(azure, actions, ws_id, tagged, now, result, attempts, wait_s, sleep)
    return result


def _first_seen(
    actions: CostActions, unknown: bool, owner_id: str, tagged: list[Tagged], now: datetime
) -> datetime | None:
    """The oldest creation time among `tagged`; for an id with no record and no creation
    time, when the sweeper first saw it."""
    first_seen = min((r.created for r in tagged if r.created), default=None)
    if unknown and first_seen is None:
        first_seen = actions.first_seen(owner_id, now)
    return first_seen


def _load(store: BuildStore, build_id: str) -> Build | None:
    try:
        return store.get(build_id).build
    except BuildNotFound:
        return None


def _load_workstation(store: WorkstationStore, ws_id: str) -> Workstation | None:
    try:
        return store.get(ws_id).ws
    except WorkstationNotFound:
        return None


def _order(kind: str) -> int:
    lowered = [t.lower() for t in resources.DELETE_ORDER]
    return lowered.index(kind.lower()) if kind.lower() in lowered else len(lowered)


def _delete_in_order(
    azure: AzureClients,
    actions: CostActions,
    build_id: str,
    doomed: Iterable[Tagged],
    now: datetime,
    result: SweepResult,
    attempts: int,
    wait_s: float,
    sleep: Callable[[float], None],
) -> None:
    """One type at a time, in dependency order; a type waits until the previous one is gone."""
    groups: dict[int, list[Tagged]] = {}
    for resource in doomed:
        groups.setdefault(_order(resource.type), []).append(resource)
    for _, batch in sorted(groups.items()):
        known = [r for r in batch if _known_type(r.type)]
        for resource in batch:
            if resource not in known:
                _failed(
                    actions, build_id, resource.id, now, result, "type the sweeper cannot delete"
                )
        pending = {r.id: r for r in known}
        errors: dict[str, str] = {}
        for attempt in range(attempts):
            for resource in list(pending.values()):
                try:
                    if not resources.exists(azure, _canonical(resource.type), resource.id):
                        continue
                    resources.begin_delete(azure, _canonical(resource.type), resource.id)
                except StepError as exc:
                    errors[resource.id] = str(exc)
            deadline = time.monotonic() + wait_s
            while pending and time.monotonic() < deadline:
                for rid, resource in list(pending.items()):
                    try:
                        gone = not resources.exists(azure, _canonical(resource.type), rid)
                    except StepError as exc:
                        errors[rid] = str(exc)
                        continue
                    if gone:
                        del pending[rid]
                        errors.pop(rid, None)
                        result.deleted.append(rid)
                        actions.record_sweep(rid, build_id, now, "deleted")
                        logger.info("sweeper: deleted %s of build %s", rid, build_id)
                if pending:
                    sleep(1)
            if not pending:
                break
            sleep(min(30, 2**attempt))
        for rid in pending:
            why = errors.get(rid, f"still present after {attempts} attempts")
            _failed(actions, build_id, rid, now, result, why)


def _failed(
    actions: CostActions, build_id: str, rid: str, now: datetime, result: SweepResult, why: str
) -> None:
    result.failed.append((rid, why))
    actions.record_sweep(rid, build_id, now, "failed", why)
    logger.warning(
        "sweeper: could not delete %s of build %s: %s (delete it by hand)", rid, build_id, why
    )


def _known_type(kind: str) -> bool:
    return kind.lower() in {t.lower() for t in resources.DELETE_ORDER}


def _canonical(kind: str) -> str:
    return next(t for t in resources.DELETE_ORDER if t.lower() == kind.lower())
