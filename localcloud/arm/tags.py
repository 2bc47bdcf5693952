"""The Tags API on a resource or a resource group: `{scope}/providers/Microsoft.Resources/tags/
default`.

Shapes from the REST reference (learn.microsoft.com/rest/api/resources/tags: Get At Scope,
Create Or Update At Scope, Update At Scope, Delete At Scope): the reply is a TagsResource
`{"id", "name": "default", "type": "Microsoft.Resources/tags", "properties": {"tags"}}`;
PATCH carries `operation`: 'Replace' replaces the whole set, 'Merge' adds new names and
updates existing ones, 'Delete' removes the given names (or only the given name/value pairs).
An entity holds at most 50 tags.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localcloud.arm import errors
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import parse_id
from localcloud.arm.store import Resource

MAX_TAGS = 50
MAX_NAME_CHARS = 512
MAX_VALUE_CHARS = 256
FORBIDDEN_IN_NAMES = "<>%&\\?/"
OPERATIONS = ("replace", "merge", "delete")


def check_tags(tags: dict[str, str]) -> None:
    """Azure's limits on a resource's tags, for a resource PUT as for the Tags API: at most 50,
    names up to 512 characters without < > % & \\ ? /, values up to 256 (ARM's
    tag-resources.md, "Limitations"). The codes are as users report them; the controller
    reads none of them."""
    if len(tags) > MAX_TAGS:
        raise errors.invalid_parameter(f"An entity can have at most {MAX_TAGS} tags.", "tags")
    for name, value in tags.items():
        if len(name) > MAX_NAME_CHARS:
            raise errors.ArmError(
                400,
                "InvalidTagNameLength",
                f"The tag name '{name[:64]}...' exceeds the maximum length of {MAX_NAME_CHARS}.",
            )
        if any(c in FORBIDDEN_IN_NAMES for c in name):
            raise errors.ArmError(
                400,
                "InvalidTagNameCharacters",
                f"The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/'.",
            )
        if len(value) > MAX_VALUE_CHARS:
            raise errors.ArmError(
                400,
                "InvalidTagValueLength",
                f"The tag value of '{name}' exceeds the maximum length of {MAX_VALUE_CHARS}.",
            )


async def tags_at_scope(
    request: web.Request, emu: Emulator, scope_parts: list[str]
) -> web.Response:
    """Answer a Tags API call; `scope_parts` is the path before `/providers/Microsoft.Resources`."""
    tail = [p.lower() for p in request.path.split("/") if p][len(scope_parts) :]
    if tail != ["providers", "microsoft.resources", "tags", "default"]:
        raise errors.ArmError(404, "NoRegisteredProviderFound", f"No route for {request.path}.")
    scope = "/" + "/".join(scope_parts)
    target = _target(emu, scope_parts)
    tags: dict[str, str] = dict(target.body.get("tags") or {})
    method = request.method
    if method == "PUT":
        tags = _tags_of(await request.json())
    elif method == "PATCH":
        body = await request.json()
        operation = str((body or {}).get("operation") or "").lower()
        if operation not in OPERATIONS:
            raise errors.invalid_parameter(
                f"The operation '{body.get('operation')}' is not one of Replace, Merge, Delete.",
                "operation",
            )
        given = _tags_of(body)
        if operation == "replace":
            tags = given
        elif operation == "merge":
            tags.update(given)
        else:
            tags = {k: v for k, v in tags.items() if not (k in given and (given[k] in ("", v)))}
    elif method == "DELETE":
        tags = {}
    elif method != "GET":
        raise errors.ArmError(404, "NoRegisteredProviderFound", f"No route for {request.path}.")
    check_tags(tags)
    if method != "GET":
        target.body["tags"] = tags
        emu.store.touch()
    return json_response(
        {
            "id": f"{scope}/providers/Microsoft.Resources/tags/default",
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": tags},
        }
    )


def _tags_of(body: Any) -> dict[str, str]:
    props = body.get("properties") if isinstance(body, dict) else None
    tags = props.get("tags") if isinstance(props, dict) else None
    if not isinstance(tags, dict):
        raise errors.invalid_parameter("properties.tags is required.", "properties.tags")
    return {str(k): str(v) for k, v in tags.items()}


def _target(emu: Emulator, scope_parts: list[str]) -> Resource:
    """The resource or resource group the tags belong to (404 when it does not exist)."""
    scope = "/" + "/".join(scope_parts)
    ref = parse_id(scope)
    if ref is not None:
        return emu.require(ref)
    if len(scope_parts) == 4 and scope_parts[2].lower() == "resourcegroups":
        return emu.require_group(scope_parts[1], scope_parts[3])
    raise errors.invalid_parameter(
        f"Tags at scope '{scope}' are not served by localcloud (resources and groups only).",
        "scope",
    )


__all__ = ["tags_at_scope"]
