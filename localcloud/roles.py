"""The role file localcloud's ARM emulator enforces, made from the project's `infra/roles.json`.

`infra/roles.json` is what the Bicep deploys: role definitions and, per kind of scope, the roles
of the controller's identity. Here those kinds become this instance's scopes (the build group,
the extra auto-stop groups) and the emulator's generic document (localcloud/arm/authz.py):
role definitions, principals, assignments. Two principals: the controller's user-assigned
identity (selected by AZURE_CLIENT_ID, as on Azure Functions) and the deployer, who holds the
first role set `deployer.choices` names at subscription scope and makes the build group, as
the person running `azd up` does. The Key Vault roles go to the vault emulator's id; storage
scopes are left out, since Azurite does not check data-plane roles.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localcloud.instance import (
    CONTROLLER_CLIENT_ID,
    CONTROLLER_PRINCIPAL_ID,
    DEPLOYER_CLIENT_ID,
    DEPLOYER_PRINCIPAL_ID,
    REPO_ROOT,
    write_private_json,
)

ROLES_FILE = REPO_ROOT / "infra" / "roles.json"


def custom_role_id(name: str) -> str:
    """A stable id for a custom role (the Bicep derives its own with guid())."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"localcloud/customRoles/{name}"))


def _definition(role_id: str, role: dict[str, Any]) -> dict[str, Any]:
    keys = ("actions", "notActions", "dataActions", "notDataActions")
    return {
        "id": role_id,
        "roleName": role["roleName"],
        "permissions": [{key: list(role.get(key) or []) for key in keys}],
    }


def authorization_document(
    roles: dict[str, Any],
    subscription: str,
    build_group: str,
    autostop_groups: Iterable[str],
    vault_id: str | None = None,
) -> dict[str, Any]:
    """The emulator's role document for one instance (see the module docstring)."""
    built_in = roles["builtInRoles"]
    custom = roles["customRoles"]
    definitions = [_definition(r["id"], r) for r in built_in.values()]
    definitions += [_definition(custom_role_id(name), r) for name, r in custom.items()]

    def ids(kind: str) -> list[str]:
        entry = roles["assignments"][kind]
        return [built_in[n]["id"] for n in entry["builtIn"]] + [
            custom_role_id(n) for n in entry["custom"]
        ]

    sub_scope = f"/subscriptions/{subscription}"
    scopes = {"buildGroup": [f"{sub_scope}/resourceGroups/{build_group}"]}
    # As main.bicep: the auto-stop role goes to the extra groups, not to the build group.
    scopes["autostopGroups"] = [
        f"{sub_scope}/resourceGroups/{g}"
        for g in dict.fromkeys(autostop_groups)
        if g.lower() != build_group.lower()
    ]
    scopes["keyVault"] = [vault_id] if vault_id else []
    assignments = [
        {"principalId": CONTROLLER_PRINCIPAL_ID, "roleDefinitionId": role, "scope": scope}
        for kind, kind_scopes in scopes.items()
        for scope in kind_scopes
        for role in ids(kind)
    ]
    assignments += [
        {
            "principalId": DEPLOYER_PRINCIPAL_ID,
            "roleDefinitionId": built_in[n]["id"],
            "scope": sub_scope,
        }
        for n in roles["deployer"]["choices"][0]
    ]
    return {
        "roleDefinitions": definitions,
        "principals": [
            {"principalId": CONTROLLER_PRINCIPAL_ID, "clientId": CONTROLLER_CLIENT_ID},
            {"principalId": DEPLOYER_PRINCIPAL_ID, "clientId": DEPLOYER_CLIENT_ID},
        ],
        "roleAssignments": assignments,
    }


def write_authorization_file(
    path: Path,
    subscription: str,
    build_group: str,
    autostop_groups: Iterable[str],
    vault_id: str | None = None,
) -> Path:
    roles = json.loads(ROLES_FILE.read_text())
    document = authorization_document(roles, subscription, build_group, autostop_groups, vault_id)
    write_private_json(path, document)
    return path
