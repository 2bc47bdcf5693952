"""Azure RBAC for the emulator: role definitions, principals, assignments, and the check.

The emulator reads one JSON document (`--authorization-file`), generic Azure terms only:

    {"roleDefinitions": [{"id", "roleName", "permissions": [{"actions", "notActions",
                          "dataActions", "notDataActions"}]}],
     "principals": [{"principalId", "clientId", "displayName"}],
     "roleAssignments": [{"principalId", "roleDefinitionId", "scope"}]}

Evaluation follows Azure's documented model (learn.microsoft.com/azure/role-based-access-control/
role-definitions, "Actions", "NotActions", "Wildcard"): a principal may perform an action at a
scope when an assignment at that scope or a parent scope (assignment scopes are prefixes:
subscription, resource group, resource) names a role with a permission whose Actions match the
action and whose NotActions do not. `*` matches any run of characters, operation strings are
case-insensitive, and NotActions subtract only within their own role (another role can grant it
back). Refusals carry ARM's bodies (RULES.md 1.5: `AuthorizationFailed`, ARO-RP#66;
`LinkedAuthorizationFailed`, kubernetes-sigs/cloud-provider-azure#1999).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.arm.errors import ArmError
from localcloud.arm.rbac_actions import linked, required


def _pattern(operation: str) -> re.Pattern[str]:
    return re.compile(
        "^" + ".*".join(re.escape(part) for part in operation.split("*")) + "$", re.IGNORECASE
    )


@dataclass(frozen=True)
class Permission:
    actions: tuple[re.Pattern[str], ...]
    not_actions: tuple[re.Pattern[str], ...]
    data_actions: tuple[re.Pattern[str], ...]
    not_data_actions: tuple[re.Pattern[str], ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Permission:
        def patterns(key: str) -> tuple[re.Pattern[str], ...]:
            return tuple(_pattern(str(op)) for op in data.get(key) or [])

        return cls(
            patterns("actions"),
            patterns("notActions"),
            patterns("dataActions"),
            patterns("notDataActions"),
        )

    def allows(self, operation: str, data: bool = False) -> bool:
        granted, denied = (
            (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        )
        return any(p.match(operation) for p in granted) and not any(
            p.match(operation) for p in denied
        )


@dataclass(frozen=True)
class Principal:
    principal_id: str  # the object id ARM names in its errors
    client_id: str  # what a managed-identity token request selects it by


@dataclass(frozen=True)
class Assignment:
    principal_id: str
    role_id: str
    scope: str


def _role_key(role_id: str) -> str:
    """A role definition id, full (`/.../roleDefinitions/<guid>`) or bare, as its last part."""
    return role_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _covers(assignment_scope: str, scope: str) -> bool:
    outer = assignment_scope.rstrip("/").lower()
    inner = scope.rstrip("/").lower()
    return outer == "" or inner == outer or inner.startswith(outer + "/")


class Authorization:
    """Role definitions, principals and assignments, loaded once."""

    def __init__(
        self,
        roles: dict[str, tuple[Permission, ...]],
        principals: tuple[Principal, ...],
        assignments: tuple[Assignment, ...],
    ) -> None:
        self.roles = roles
        self.principals = principals
        self.assignments = assignments

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Authorization:
        roles = {
            _role_key(str(role["id"])): tuple(
                Permission.from_json(p) for p in role.get("permissions") or []
            )
            for role in data.get("roleDefinitions") or []
        }
        principals = tuple(
            Principal(str(p["principalId"]), str(p.get("clientId") or p["principalId"]))
            for p in data.get("principals") or []
        )
        assignments = tuple(
            Assignment(str(a["principalId"]), _role_key(str(a["roleDefinitionId"])), a["scope"])
            for a in data.get("roleAssignments") or []
        )
        for assignment in assignments:
            if assignment.role_id not in roles:
                raise ValueError(f"assignment names unknown role {assignment.role_id}")
        return cls(roles, principals, assignments)

    @classmethod
    def from_file(cls, path: Path) -> Authorization:
        return cls.from_json(json.loads(path.read_text()))

    def principal(self, client_id: str | None, object_id: str | None) -> Principal | None:
        """The identity a token request selects (`client_id` or `object_id`/`principal_id`)."""
        for principal in self.principals:
            if client_id and principal.client_id.lower() == client_id.lower():
                return principal
            if object_id and principal.principal_id.lower() == object_id.lower():
                return principal
        return None

    def allows(self, principal_id: str, operation: str, scope: str, data: bool = False) -> bool:
        """True when some role assigned to the principal at `scope` or above grants it."""
        for assignment in self.assignments:
            if assignment.principal_id.lower() != principal_id.lower():
                continue
            if not _covers(assignment.scope, scope):
                continue
            if any(p.allows(operation, data) for p in self.roles[assignment.role_id]):
                return True
        return False


def authorization_failed(client: str, object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{client}' with object id '{object_id}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
    )


def linked_authorization_failed(
    client: str, object_id: str, action: str, scope: str, linked: str, linked_scopes: list[str]
) -> ArmError:
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{client}' with object id '{object_id}' has permission to perform action "
        f"'{action}' on scope '{scope}'; however, it does not have permission to perform action "
        f"'{linked}' on the linked scope(s) '{', '.join(linked_scopes)}' or the linked scope(s) "
        "are invalid.",
    )


async def enforce(authz: Authorization, request: web.Request, claims: dict[str, Any]) -> None:
    """Raise ARM's 403 unless the token's principal may make this call (and, for a PUT, use
    every resource its body links to)."""
    needed = required(request.method, request.path)
    if needed is None:
        return
    object_id = str(claims.get("oid") or "")
    client = str(claims.get("appid") or object_id)
    if not any(authz.allows(object_id, action, needed.scope) for action in needed.actions):
        raise authorization_failed(client, object_id, needed.actions[0], needed.scope)
    if request.method != "PUT" or not request.can_read_body:
        return
    try:
        body = await request.json()  # aiohttp keeps the body: the handler reads it again
    except ValueError:
        return  # the handler answers the malformed body
    refused: dict[str, list[str]] = {}
    for action, scope in linked(request.method, request.path, body):
        if not authz.allows(object_id, action, scope):
            refused.setdefault(action, []).append(scope)
    for action, scopes in refused.items():
        raise linked_authorization_failed(
            client, object_id, needed.actions[0], needed.scope, action, scopes
        )
