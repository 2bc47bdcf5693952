"""The X-MS-CLIENT-PRINCIPAL header as App Service authentication (Microsoft Entra ID) hands it
to the app: base64 JSON with auth_typ, claims [{typ, val}] (object id under its mapped claim
type, roles under `roles`), name_typ and role_typ. localcloud's host makes the same shape
(tests/localcloud/test_funchost.py checks it)."""

from __future__ import annotations

import base64
import json
import uuid

OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def object_id_of(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-principal:{name}"))


def principal_headers(name: str, *roles: str) -> dict[str, str]:
    claims = [
        {"typ": OBJECT_ID, "val": object_id_of(name)},
        {"typ": "name", "val": name.split("@")[0].title()},
        {"typ": "preferred_username", "val": name},
        *({"typ": "roles", "val": role} for role in roles),
    ]
    document = {
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return {
        "x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode(),
        "x-ms-client-principal-id": object_id_of(name),
        "x-ms-client-principal-name": name,
    }


ALICE = principal_headers("alice@example.org")
BOB = principal_headers("bob@example.org")
ADMIN = principal_headers("root@example.org", "labimage.admin")
