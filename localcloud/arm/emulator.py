"""The emulator's shared state and the response shapes every resource kind uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from localcloud.arm import errors
from localcloud.arm.durations import operation_seconds
from localcloud.arm.ids import ResourceRef, group_id
from localcloud.arm.operations import Failed, Operations, Work
from localcloud.arm.store import Resource, Store
from localcloud.faults import FaultInjector, FaultPlan, plan_file
from localcloud.sandbox.api import VmRunner

T = TypeVar("T")

RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"


@dataclass
class EmulatorSettings:
    state_dir: Path
    page_size: int = 100
    # Whole seconds ARMPolling sleeps between polls: the SDKs parse the header as an int.
    # 0 leaves the header out, so the client's own polling_interval applies (fast tests).
    retry_after: int = 1
    records_only: bool = False  # every VM is a record; the runner is never asked to boot
    # Role definitions, principals and assignments (authz.py); None: every call is allowed.
    authorization_file: Path | None = None
    # The Key Vault emulator's ARM id, where role assignments name it (None: no role checks).
    vault_resource_id: str | None = None
    # What a VM without securityProfile gets where image and size allow Trusted Launch:
    # "Standard" (Azure without the Trusted-Launch-by-default rollout) or "TrustedLaunch"
    # (with it; ACD trusted-launch.md, RULES.md section 4).
    default_security_type: str = "Standard"
    # Long-running operations take durations.REAL_AZURE_SECONDS x lro_scale (0: instant), or
    # exactly lro_seconds[type] for the types named there (lower-case type names).
    lro_scale: float = 0.0
    lro_seconds: dict[str, float] = field(default_factory=dict)
    faults: FaultPlan | None = None  # localcloud.faults; None: every call is answered well
    # (listen port, Blob port): a guest's Blob reads pass a fault layer (blob_fault_proxy.py)
    # listening on 127.0.0.1:<listen port>; None: no such layer.
    guest_blob_proxy: tuple[int, int] | None = None


class Emulator:
    """Store, operations, runner and the settings, handed to every resource kind."""

    def __init__(self, settings: EmulatorSettings, runner: VmRunner) -> None:
        self.settings = settings
        self.runner = runner
        self.store = Store(settings.state_dir / "arm" / "state.json")
        self.operations = Operations(self.store)
        self._locks: dict[str, asyncio.Lock] = {}
        # What calls are answered badly (off unless a plan is given or POSTed at run time).
        # Published for the git server, which applies the plan's GIT rules in its own process.
        self.faults = FaultInjector(settings.faults, publish_to=plan_file(settings.state_dir))

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    # --- helpers for kinds ------------------------------------------------------------------
    def lock(self, resource_id: str) -> asyncio.Lock:
        """One lock per resource so background work on it runs one piece at a time."""
        return self._locks.setdefault(resource_id.lower(), asyncio.Lock())

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking runner call in a thread so the server keeps answering."""
        return await asyncio.to_thread(fn, *args)

    def require_group(self, subscription: str, group: str) -> Resource:
        resource = self.store.get(group_id(subscription, group))
        if resource is None:
            raise errors.group_not_found(group)
        return resource

    def require(self, ref: ResourceRef) -> Resource:
        self.require_group(ref.subscription, ref.group)
        resource = self.store.get(ref.id)
        if resource is None or resource.type.lower() != ref.type_name.lower():
            raise errors.resource_not_found(ref.type_name, "/".join(ref.names), ref.group)
        return resource

    def find(self, resource_id: str | None, type_name: str) -> Resource | None:
        if not resource_id:
            return None
        resource = self.store.get(resource_id)
        if resource is None or resource.type.lower() != type_name.lower():
            return None
        return resource

    def operation_seconds(self, type_name: str) -> float:
        """How long an operation on `type_name` stays InProgress at least."""
        return operation_seconds(type_name, self.settings.lro_scale, self.settings.lro_seconds)

    def _settle_later(self, resource: Resource, during: str) -> Work:
        """A change stored at once still shows `during` until its operation ends, as on ARM."""
        final = resource.props.get("provisioningState", "Succeeded")
        resource.props["provisioningState"] = during
        self.store.touch()

        async def settle() -> None:
            if resource.props.get("provisioningState") == during:
                resource.props["provisioningState"] = final
                self.store.touch()

        return settle

    # --- responses --------------------------------------------------------------------------
    def operation_urls(
        self, request: web.Request, ref: ResourceRef, location: str, op_id: str
    ) -> dict[str, str]:
        base = (
            f"{request.scheme}://{request.host}/subscriptions/{ref.subscription}/providers/"
            f"{ref.namespace}/locations/{_location_key(location)}"
        )
        api = request.query.get("api-version", "")
        headers = {
            "Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={api}",
            "Location": f"{base}/operationResults/{op_id}?api-version={api}",
        }
        if self.settings.retry_after > 0:
            headers["Retry-After"] = str(self.settings.retry_after)
        return headers

    def put_response(
        self,
        request: web.Request,
        ref: ResourceRef,
        resource: Resource,
        created: bool,
        work: Work | None,
        on_failure: Failed | None = None,
        initial_state: str | None = None,
    ) -> web.Response:
        """201 (new) or 200 (update) with Azure-AsyncOperation; `work` runs in the background.

        `initial_state` is the provisioningState the reply shows (the stored one may already
        be final when the change needed no background work).
        """
        body = json.loads(json.dumps(resource.body))  # a copy before the work changes it
        if initial_state is not None:
            body.setdefault("properties", {})["provisioningState"] = initial_state
        least = self.operation_seconds(ref.type_name)
        if least > 0 and work is None and initial_state is not None:
            work = self._settle_later(resource, initial_state)
        op_id = self.operations.start(work, on_failure, least)
        headers = self.operation_urls(request, ref, resource.body.get("location", ""), op_id)
        del headers["Location"]  # ARM's PUTs name only the status resource
        return json_response(body, 201 if created else 200, headers)

    def accepted(
        self,
        request: web.Request,
        ref: ResourceRef,
        location: str,
        work: Work | None,
        on_failure: Failed | None = None,
    ) -> web.Response:
        """202 with Azure-AsyncOperation, Location and Retry-After (POST actions, DELETE)."""
        op_id = self.operations.start(work, on_failure, self.operation_seconds(ref.type_name))
        return web.Response(status=202, headers=self.operation_urls(request, ref, location, op_id))


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _location_key(location: str) -> str:
    return location.replace(" ", "").lower() or "global"
