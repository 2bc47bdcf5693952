"""What every resource kind does by default: ARM's generic GET, PATCH (tags), DELETE, list."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from localcloud.arm import errors
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import ResourceRef
from localcloud.arm.naming import NameRule
from localcloud.arm.store import Resource
from localcloud.arm.tags import check_tags


class Kind:
    """A resource type. Subclasses override `put` and whatever differs from ARM's defaults."""

    type_name: str = ""
    name_rule: NameRule
    uses_etag = False

    def check_name(self, ref: ResourceRef) -> None:
        self.name_rule.check(ref.name, self.type_name)

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        raise errors.ArmError(405, "MethodNotAllowed", f"PUT is not supported on {ref.type_name}")

    def lookup(self, emu: Emulator, ref: ResourceRef) -> Resource:
        return emu.require(ref)

    def view(self, emu: Emulator, resource: Resource, request: web.Request) -> dict[str, Any]:
        """The body a GET returns."""
        return resource.body

    async def get(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        return json_response(self.view(emu, self.lookup(emu, ref), request))

    async def patch(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        """Update tags (the one PATCH every type supports)."""
        resource = self.lookup(emu, ref)
        if "tags" in body:
            resource.body["tags"] = checked_tags(body["tags"] or {})
            emu.store.touch()
        return json_response(self.view(emu, resource, request))

    async def delete(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        emu.require_group(ref.subscription, ref.group)
        resource = emu.store.get(ref.id)
        if resource is None:
            return web.Response(status=204)  # ARM: deleting what is not there succeeds
        self.check_delete(emu, resource)
        location = resource.body.get("location", "")
        resource.props["provisioningState"] = "Deleting"
        return emu.accepted(request, ref, location, lambda: self.remove(emu, resource))

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        """Raise the refusal ARM gives when the resource is still in use."""

    async def remove(self, emu: Emulator, resource: Resource) -> None:
        """The background part of a DELETE."""
        emu.store.delete(resource.id)

    async def action(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, action: str
    ) -> web.Response:
        raise errors.ArmError(
            404, "InvalidResourceType", f"The resource type '{ref.type_name}/{action}' is unknown."
        )

    def list_items(
        self, emu: Emulator, request: web.Request, prefix: str
    ) -> list[dict[str, Any]] | None:
        """Children listing for types that are not stored on their own (None: use the store)."""
        return None

    # --- shared building blocks -------------------------------------------------------------
    def base_body(
        self, ref: ResourceRef, body: dict[str, Any], existing: Resource | None
    ) -> dict[str, Any]:
        location = body.get("location") or (existing.body.get("location") if existing else None)
        if not location:
            raise errors.ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        tags = body.get("tags")
        if tags is None:
            tags = existing.body.get("tags", {}) if existing else {}
        result: dict[str, Any] = {
            "id": ref.id,
            "name": ref.name,
            "type": self.type_name,
            "location": location,
            "tags": checked_tags(tags),
        }
        if self.uses_etag:
            result["etag"] = new_etag()
        return result


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def copy_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def ref_id(value: Any) -> str | None:
    """The `id` of a `{"id": ...}` sub-resource, or None."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def checked_tags(tags: Any) -> dict[str, str]:
    """A resource body's tags, within Azure's limits (see localcloud.arm.tags)."""
    if not isinstance(tags, dict):
        raise errors.invalid_parameter("tags must be an object of names and values.", "tags")
    result = {str(k): str(v) for k, v in tags.items()}
    check_tags(result)
    return result
