"""Which RBAC operation an ARM call needs, at which scope, and the linked checks of a PUT.

Operation names follow Azure's resource provider operations (learn.microsoft.com/azure/
role-based-access-control/permissions/compute, /networking, /management-and-governance;
RULES.md 2.1): `<namespace>/<type path>/read|write|delete` for GET, PUT/PATCH, DELETE on a
resource; `.../<name>/action` for POST actions; `.../<child>/read` for GETs of a child
collection or view (instanceView); list calls need `read` of the type at the scope listed.
The scope is the resource's id (a POST action's or a child list's parent), the resource group
or the subscription: a list over the whole subscription needs a role there, one on a group is
not enough (JetBrains/teamcity-azure-agent#109). Not modelled: ARM's answer to a subscription-
wide list of resource groups for a caller with group roles only (here a 403, not a filtered
list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localcloud.arm.ids import parse_id

GROUP_TYPE = "Microsoft.Resources/subscriptions/resourceGroups"
SUBSCRIPTION_TYPE = "Microsoft.Resources/subscriptions"
TAGS = "Microsoft.Resources/tags"
_VERB = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass(frozen=True)
class Required:
    """Any one of `actions` at `scope` allows the call; the first is the one ARM names."""

    actions: tuple[str, ...]
    scope: str


def required(method: str, path: str) -> Required | None:
    """The operation a call needs; None for calls ARM does not authorize by role (the polls
    of an operation's status: an identity with a group-scoped role polls its own operations)."""
    parts = [p for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    if len(parts) < 2 or low[0] != "subscriptions":
        return None
    sub_scope = f"/subscriptions/{parts[1]}"
    tags_at = tags_api_index(low)
    if tags_at is not None:
        return _tags(method, parts[:tags_at])
    verb = _VERB.get(method, "action")
    if len(parts) == 2:
        return Required((f"{SUBSCRIPTION_TYPE}/{verb}",), sub_scope)
    if len(parts) == 3 and low[2] == "resourcegroups":
        return Required((f"{GROUP_TYPE}/read",), sub_scope)
    if len(parts) == 3 and low[2] == "resources":
        return Required((f"{SUBSCRIPTION_TYPE}/resources/read",), sub_scope)
    if low[2] == "providers":
        if len(parts) >= 6 and low[4] == "locations":
            return None  # operation status and results
        if len(parts) == 5:
            return Required((f"{parts[3]}/{parts[4]}/read",), sub_scope)
        return None
    if low[2] != "resourcegroups" or len(parts) < 4:
        return None
    group_scope = f"{sub_scope}/resourceGroups/{parts[3]}"
    if len(parts) == 4:
        return Required((f"{GROUP_TYPE}/{verb}",), group_scope)
    if len(parts) == 5 and low[4] == "resources":
        return Required((f"{GROUP_TYPE}/resources/read",), group_scope)
    if len(parts) < 7 or low[4] != "providers":
        return None
    namespace, rest = parts[5], parts[6:]
    if len(rest) == 1:
        return Required((f"{namespace}/{rest[0]}/read",), group_scope)
    types = "/".join(rest[0:-1:2]) if len(rest) % 2 else "/".join(rest[0::2])
    resource = "/".join(parts[: len(parts) - (len(rest) % 2)])
    if len(rest) % 2:
        suffix = "action" if method == "POST" else _VERB.get(method, "action")
        return Required((f"{namespace}/{types}/{rest[-1]}/{suffix}",), "/" + resource)
    return Required((f"{namespace}/{types}/{verb}",), "/" + resource)


def tags_api_index(low: list[str]) -> int | None:
    """Where `/providers/Microsoft.Resources/tags/default` starts (the Tags API), if present."""
    for i in range(2, len(low) - 2):
        if low[i : i + 3] == ["providers", "microsoft.resources", "tags"]:
            return i
    return None


def _tags(method: str, scope_parts: list[str]) -> Required:
    """Tags API: its own action, or the same access to the tagged resource itself (learn.
    microsoft.com/azure/azure-resource-manager/management/tag-resources, 'Required access':
    write access to Microsoft.Resources/tags, or write access to the resource)."""
    scope = "/" + "/".join(scope_parts)
    ref = parse_id(scope)
    if ref is not None:
        own = ref.type_name
    elif len(scope_parts) == 4:
        own = GROUP_TYPE
    else:
        own = SUBSCRIPTION_TYPE
    if method in ("GET", "HEAD"):
        return Required((f"{TAGS}/read", f"{own}/read"), scope)
    if method == "DELETE":
        return Required((f"{TAGS}/delete", f"{own}/write"), scope)
    return Required((f"{TAGS}/write", f"{own}/write"), scope)


def linked(method: str, path: str, body: Any) -> list[tuple[str, str]]:
    """(operation, scope) pairs a PUT also needs on the resources its body references:
    a VM's NICs (`networkInterfaces/join/action`); a NIC's subnets, public IPs and security
    group (`.../join/action`) (RULES.md 2.1, LinkedAuthorizationFailed threads); `read` of the
    image a VM starts from and of the source of an image or gallery version (a gallery version:
    kubernetes-sigs/cluster-api-provider-azure#2746, MicrosoftDocs/azure-docs#68563,
    Azure/azure-cli#30976; a managed image or VM source: the same rule, inferred)."""
    if method != "PUT" or not isinstance(body, dict):
        return []
    ref = parse_id(path)
    if ref is None:
        return []
    props = body.get("properties") or {}
    if not isinstance(props, dict):
        return []
    kind = ref.type_name.lower()
    found: list[tuple[str, str]] = []
    if kind == "microsoft.compute/virtualmachines":
        for nic in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
            found += _ref("Microsoft.Network/networkInterfaces/join/action", nic)
        found += _read_of((props.get("storageProfile") or {}).get("imageReference"))
    elif kind == "microsoft.compute/images":
        found += _read_of(props.get("sourceVirtualMachine"))
    elif kind == "microsoft.compute/galleries/images/versions":
        found += _read_of((props.get("storageProfile") or {}).get("source"))
    elif kind == "microsoft.network/networkinterfaces":
        for config in props.get("ipConfigurations") or []:
            inner = (config or {}).get("properties") or {}
            found += _ref(
                "Microsoft.Network/virtualNetworks/subnets/join/action", inner.get("subnet")
            )
            found += _ref(
                "Microsoft.Network/publicIPAddresses/join/action", inner.get("publicIPAddress")
            )
        found += _ref(
            "Microsoft.Network/networkSecurityGroups/join/action", props.get("networkSecurityGroup")
        )
    return found


def _ref(operation: str, reference: Any) -> list[tuple[str, str]]:
    if isinstance(reference, dict) and isinstance(reference.get("id"), str) and reference["id"]:
        return [(operation, reference["id"])]
    return []


def _read_of(reference: Any) -> list[tuple[str, str]]:
    """`<type>/read` on a referenced resource id (marketplace image references have none)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("id"), str):
        return []
    ref = parse_id(reference["id"])
    return [] if ref is None else [(f"{ref.type_name}/read", reference["id"])]
