"""The HTTPS Resource Manager front door: auth, api-version, throttling, routing, paging."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from localcloud.arm import errors, fault_layer
from localcloud.arm.authz import Authorization, enforce
from localcloud.arm.emulator import RESOURCE_GROUP_TYPE, Emulator, json_response
from localcloud.arm.identity import TokenIssuer
from localcloud.arm.ids import ResourceRef, group_id, parse_id
from localcloud.arm.kinds.registry import GROUP_DELETE_ORDER, KINDS
from localcloud.arm.kinds.vms import VM, record_vm_body, record_vm_internal
from localcloud.arm.naming import RESOURCE_GROUP
from localcloud.arm.rbac_actions import tags_api_index
from localcloud.arm.store import Resource
from localcloud.arm.tags import tags_at_scope

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EMULATOR_KEY = web.AppKey("emulator", Emulator)
ISSUER_KEY = web.AppKey("issuer", TokenIssuer)
AUTHZ_KEY = web.AppKey("authorization", Authorization)


def build_app(emulator: Emulator, issuer: TokenIssuer) -> web.Application:
    """The ARM application (serve it over TLS); `/localcloud/...` holds the admin routes.
    With `issuer.authorization` every ARM call is checked against its role assignments."""
    app = web.Application(middlewares=[_arm_middleware], client_max_size=64 * 1024**2)
    app[EMULATOR_KEY] = emulator
    app[ISSUER_KEY] = issuer
    if issuer.authorization is not None:
        app[AUTHZ_KEY] = issuer.authorization
    app.router.add_get("/localcloud/health", _health)
    app.router.add_post("/localcloud/records", _add_records)
    app.router.add_post("/localcloud/throttle", _throttle)
    app.router.add_post("/localcloud/delay", _delay)
    app.router.add_get("/localcloud/faults", _faults)
    app.router.add_post("/localcloud/faults", _set_faults)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


# --- middleware ---------------------------------------------------------------------------------
@web.middleware
async def _arm_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    emu = request.app[EMULATOR_KEY]
    try:
        if request.path == "/localcloud/health":
            return await handler(request)
        claims = request.app[ISSUER_KEY].verify(request.headers.get("Authorization"))
        if request.path.startswith("/localcloud/"):
            return await handler(request)
        key = fault_layer.arm_key(request.method, request.path)
        return await fault_layer.with_faults(
            emu.faults, key, request, _checked(claims, handler), emu.operations
        )
    except errors.ArmError as error:
        if request.method == "HEAD":
            return web.Response(status=error.status)
        return error.response()
    except json.JSONDecodeError as error:
        return errors.ArmError(
            400, "InvalidRequestContent", f"The request content was invalid: {error.msg}."
        ).response()


def _checked(claims: dict[str, Any], handler: Handler) -> Handler:
    """`handler` behind the api-version and authorization checks."""

    async def checked(request: web.Request) -> web.StreamResponse:
        if not request.query.get("api-version"):
            raise errors.ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if AUTHZ_KEY in request.app:
            await enforce(request.app[AUTHZ_KEY], request, claims)
        return await handler(request)

    return checked


# --- admin ----------------------------------------------------------------------------------------
async def _health(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def _add_records(request: web.Request) -> web.Response:
    """Bulk-insert VM records (no sandbox): `{"subscription", "resourceGroup", "location",
    "count", "prefix", "start", "tags"}` or explicit `"names"`. The group is made if missing."""
    emu = request.app[EMULATOR_KEY]
    spec = await request.json()
    subscription, group = spec["subscription"], spec["resourceGroup"]
    location = spec.get("location", "westus")
    if emu.store.get(group_id(subscription, group)) is None:
        emu.store.put(_group_resource(subscription, group, location, {}))
    prefix = spec.get("prefix", "record-vm")
    start = int(spec.get("start", 0))
    names = spec.get("names") or [
        f"{prefix}-{index:05d}" for index in range(start, start + int(spec["count"]))
    ]
    tags = dict(spec.get("tags") or {})
    for name in names:
        ref = ResourceRef(subscription, group, "Microsoft.Compute", ("virtualMachines",), (name,))
        emu.store.put(
            Resource(ref.id, VM, record_vm_body(ref, location, tags), record_vm_internal(ref))
        )
    return json_response({"created": len(names)})


async def _throttle(request: web.Request) -> web.Response:
    return await fault_layer.throttle(request, request.app[EMULATOR_KEY].faults)


async def _delay(request: web.Request) -> web.Response:
    return await fault_layer.delay(request, request.app[EMULATOR_KEY].faults)


async def _faults(request: web.Request) -> web.Response:
    """The fault plan in force and how many faults of each kind it injected so far."""
    return web.json_response(request.app[EMULATOR_KEY].faults.report())


async def _set_faults(request: web.Request) -> web.Response:
    return await fault_layer.set_plan(request, request.app[EMULATOR_KEY].faults)


# --- routing ------------------------------------------------------------------------------------
async def _dispatch(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR_KEY]
    parts = [p for p in request.path.split("/") if p]
    low = [p.lower() for p in parts]
    method = request.method
    if len(parts) < 2 or low[0] != "subscriptions":
        raise _no_route(request)
    sub = parts[1]
    tags_at = tags_api_index(low)
    if tags_at is not None:
        return await tags_at_scope(request, emu, parts[:tags_at])
    if len(parts) == 3 and low[2] == "resourcegroups" and method == "GET":
        return _paged(
            request,
            emu,
            [r.body for r in emu.store.of_type(RESOURCE_GROUP_TYPE, f"/subscriptions/{sub}/")],
        )
    if len(parts) == 3 and low[2] == "resources" and method == "GET":
        return _resource_list(request, emu, f"/subscriptions/{sub}/")
    if len(parts) == 4 and low[2] == "resourcegroups":
        return await _group(request, emu, sub, parts[3])
    if len(parts) == 5 and low[2] == "resourcegroups" and low[4] == "resources" and method == "GET":
        emu.require_group(sub, parts[3])
        return _resource_list(request, emu, group_id(sub, parts[3]) + "/")
    if len(parts) == 8 and low[2] == "providers" and low[4] == "locations":
        return _operation(request, emu, low[6], parts[7])
    if len(parts) == 5 and low[2] == "providers" and method == "GET":
        return _list(request, emu, _kind(f"{parts[3]}/{parts[4]}"), f"/subscriptions/{sub}/")
    if len(parts) >= 7 and low[2] == "resourcegroups" and low[4] == "providers":
        return await _provider(request, emu, parts)
    raise _no_route(request)


async def _provider(request: web.Request, emu: Emulator, parts: list[str]) -> web.StreamResponse:
    sub, group, namespace = parts[1], parts[3], parts[5]
    rest = parts[6:]
    method = request.method
    if len(rest) == 1:
        kind = _kind(f"{namespace}/{rest[0]}")
        if method != "GET":
            raise _no_route(request)
        emu.require_group(sub, group)
        return _list(request, emu, kind, group_id(sub, group) + "/")
    if len(rest) % 2 == 1:
        ref = ResourceRef(sub, group, namespace, tuple(rest[0:-1:2]), tuple(rest[1:-1:2]))
        child_type = f"{ref.type_name}/{rest[-1]}".lower()
        if child_type in KINDS and method == "GET":
            kind = KINDS[child_type]
            parent_kind = _kind(ref.type_name)
            parent_kind.lookup(emu, ref)
            items = kind.list_items(emu, request, ref.id)
            if items is None:
                items = [
                    kind.view(emu, r, request)
                    for r in emu.store.of_type(kind.type_name, ref.id + "/")
                ]
            return _paged(request, emu, items)
        return await _kind(ref.type_name).action(emu, request, ref, rest[-1])
    ref = ResourceRef(sub, group, namespace, tuple(rest[0::2]), tuple(rest[1::2]))
    kind = _kind(ref.type_name)
    if method == "GET":
        return await kind.get(emu, request, ref)
    if method == "PUT":
        kind.check_name(ref)
        emu.require_group(sub, group)
        body = await request.json()
        return await kind.put(emu, request, ref, body if isinstance(body, dict) else {})
    if method == "PATCH":
        body = await request.json()
        return await kind.patch(emu, request, ref, body if isinstance(body, dict) else {})
    if method == "DELETE":
        return await kind.delete(emu, request, ref)
    raise _no_route(request)


def _list(request: web.Request, emu: Emulator, kind: Any, prefix: str) -> web.Response:
    items = [kind.view(emu, r, request) for r in emu.store.of_type(kind.type_name, prefix)]
    return _paged(request, emu, items)


def _kind(type_name: str) -> Any:
    kind = KINDS.get(type_name.lower())
    if kind is None:
        namespace, _, rest = type_name.partition("/")
        raise errors.ArmError(
            400,
            "InvalidResourceType",
            f"The resource type '{rest}' could not be found in the namespace '{namespace}'.",
        )
    return kind


def _no_route(request: web.Request) -> errors.ArmError:
    return errors.ArmError(
        404, "NoRegisteredProviderFound", f"No route for {request.method} {request.path}."
    )


# --- resource groups ------------------------------------------------------------------------------
def _group_resource(sub: str, name: str, location: str, tags: dict[str, str]) -> Resource:
    rid = group_id(sub, name)
    return Resource(
        rid,
        RESOURCE_GROUP_TYPE,
        {
            "id": rid,
            "name": name,
            "type": RESOURCE_GROUP_TYPE,
            "location": location,
            "tags": dict(tags),
            "properties": {"provisioningState": "Succeeded"},
        },
    )


async def _group(request: web.Request, emu: Emulator, sub: str, name: str) -> web.StreamResponse:
    existing = emu.store.get(group_id(sub, name))
    if request.method == "HEAD":
        return web.Response(status=204 if existing else 404)
    if request.method == "GET":
        if existing is None:
            raise errors.group_not_found(name)
        return json_response(existing.body)
    if request.method == "PUT":
        RESOURCE_GROUP.check(name, RESOURCE_GROUP_TYPE)
        body = await request.json()
        location = body.get("location") or (existing.body["location"] if existing else None)
        if not location:
            raise errors.ArmError(400, "LocationRequired", "The location property is required.")
        tags = body.get("tags")
        if tags is None:
            tags = existing.body.get("tags", {}) if existing else {}
        if existing is not None:
            name = existing.body["name"]  # ARM keeps the first spelling
        resource = _group_resource(sub, name, location, tags)
        emu.store.put(resource)
        return json_response(resource.body, 200 if existing else 201)
    if request.method == "PATCH":
        if existing is None:
            raise errors.group_not_found(name)
        body = await request.json()
        if "tags" in body:
            existing.body["tags"] = dict(body["tags"] or {})
            emu.store.touch()
        return json_response(existing.body)
    if request.method == "DELETE":
        if existing is None:
            raise errors.group_not_found(name)
        existing.props["provisioningState"] = "Deleting"
        ref = ResourceRef(sub, name, "Microsoft.Resources", (), ())

        async def work() -> None:
            await _delete_group_contents(emu, existing)
            emu.store.delete(existing.id)

        return emu.accepted(request, ref, existing.body["location"], work)
    raise _no_route(request)


async def _delete_group_contents(emu: Emulator, group: Resource) -> None:
    contents = emu.store.under(group.id)
    order = {t: i for i, t in enumerate(GROUP_DELETE_ORDER)}
    contents.sort(key=lambda r: order.get(r.type.lower(), len(order)))
    for resource in contents:
        if emu.store.get(resource.id) is None:
            continue  # already removed with its VM
        kind = KINDS.get(resource.type.lower())
        if kind is None:
            emu.store.delete(resource.id)
        else:
            await kind.remove(emu, resource)


# --- generic resource listing (sweeper-style queries) ---------------------------------------------
_FILTER_TERM = re.compile(r"(\w+)\s+eq\s+'([^']*)'", re.IGNORECASE)


_LISTED = ("id", "name", "type", "location", "tags")
_EXPANDABLE = ("createdTime", "changedTime", "provisioningState")


def _resource_list(request: web.Request, emu: Emulator, prefix: str) -> web.Response:
    """`GET .../resources` as the Resources REST spec documents it (RULES.md section 5,
    resources.json 2025-04-01): "when resources are filtered by tag name and value, the
    original tags for each resource will not be returned in the results", and `$expand`
    "may also not be compatible" with a tag filter, so it is ignored then. `$expand` takes
    createdTime, changedTime and provisioningState, which are present only when asked for."""
    expression = request.query.get("$filter", "")
    tag_filtered = "tagname" in expression.lower()
    asked = {e.strip().lower() for e in request.query.get("$expand", "").split(",")}
    expand = () if tag_filtered else tuple(f for f in _EXPANDABLE if f.lower() in asked)
    items = _generic(emu, prefix, expand)
    if expression:
        items = _apply_filter(items, expression)
    if tag_filtered:
        items = [{k: v for k, v in item.items() if k != "tags"} for item in items]
    return _paged(request, emu, items, filtered=True)


def _generic(emu: Emulator, prefix: str, expand: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for kind in KINDS.values():
        for r in emu.store.of_type(kind.type_name, prefix):
            item: dict[str, Any] = {k: r.body[k] for k in _LISTED if k in r.body}
            times = {"createdTime": r.internal.get("createdTime")}
            times["changedTime"] = r.internal.get("changedTime") or times["createdTime"]
            times["provisioningState"] = r.props.get("provisioningState")
            item.update({f: times[f] for f in expand if times.get(f)})
            items.append(item)
    return items


def _apply_filter(items: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
    """The `$filter` forms ARM lists accept: tagName/tagValue and resourceType equality."""
    terms = {k.lower(): v for k, v in _FILTER_TERM.findall(expression)}
    tag_name, tag_value = terms.get("tagname"), terms.get("tagvalue")
    rtype = terms.get("resourcetype")
    result = []
    for item in items:
        tags = {k.lower(): v for k, v in (item.get("tags") or {}).items()}
        if tag_name is not None and tag_name.lower() not in tags:
            continue
        if tag_value is not None and tags.get((tag_name or "").lower()) != tag_value:
            continue
        if rtype is not None and str(item.get("type", "")).lower() != rtype.lower():
            continue
        result.append(item)
    return result


# --- paging and operation status ----------------------------------------------------------------
def _paged(
    request: web.Request, emu: Emulator, items: list[dict[str, Any]], filtered: bool = False
) -> web.Response:
    """One page of `items` with `nextLink` (absolute, carrying `$skiptoken`) when more remain."""
    if request.query.get("$filter") and not filtered:
        items = _apply_filter(items, request.query["$filter"])
    size = emu.settings.page_size
    top = request.query.get("$top")
    if top and top.isdigit():
        size = min(size, int(top))
    start = int(request.query.get("$skiptoken", "0") or 0)
    page: dict[str, Any] = {"value": items[start : start + size]}
    if start + size < len(items):
        query = dict(request.query)
        query["$skiptoken"] = str(start + size)
        page["nextLink"] = str(request.url.with_query(query))
    return json_response(page)


def _operation(request: web.Request, emu: Emulator, which: str, op_id: str) -> web.Response:
    record = emu.operations.get(op_id)
    if record is None:
        raise errors.ArmError(404, "ResourceNotFound", f"Operation {op_id} was not found.")
    if which == "operations":
        headers = None
        if record["status"] == "InProgress" and emu.settings.retry_after > 0:
            headers = {"Retry-After": str(emu.settings.retry_after)}
        return json_response(record, headers=headers)
    if which == "operationresults":
        if record["status"] == "InProgress":
            headers = {"Location": str(request.url)}
            if emu.settings.retry_after > 0:
                headers["Retry-After"] = str(emu.settings.retry_after)
            return web.Response(status=202, headers=headers)
        if record["status"] == "Failed":
            return json_response({"error": record["error"]}, 400)
        return web.Response(status=204)
    raise errors.ArmError(404, "NoRegisteredProviderFound", f"No route for {request.path}.")


__all__ = ["build_app", "parse_id"]
