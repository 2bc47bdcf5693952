"""Who is calling: a principal App Service authentication signed in, or a function key holder.

On the user routes App Service authentication (Microsoft Entra ID) has checked the caller's
token and put the claims in `X-MS-CLIENT-PRINCIPAL` (base64 JSON: auth_typ, claims [{typ,
val}], name_typ, role_typ). App Service removes that header from what clients send, but only
when authentication is on; so the header is trusted only when the platform says it is on
(`WEBSITE_AUTH_ENABLED`), and without it every user route answers 401.

On the automation routes the Functions host has checked a function key: a key holder acts as
an administrator.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ADMIN_ROLE = "labimage.admin"
PRINCIPAL_HEADER = "x-ms-client-principal"
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_CLAIMS = (
    "preferred_username",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
)
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
MAX_PRINCIPAL_BYTES = 64 * 1024
# What an owner name may be (the request's owner field and the 'owner' tag agree on it).
_OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


@dataclass(frozen=True)
class Caller:
    """The signed-in principal (object id, user name, app roles), or a key holder."""

    object_id: str
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    key_holder: bool = False

    @property
    def is_admin(self) -> bool:
        return self.key_holder or ADMIN_ROLE in self.roles

    @classmethod
    def with_function_key(cls) -> Caller:
        return cls(object_id="", name="", key_holder=True)

    def owns(self, owner_id: str) -> bool:
        """True when a build recorded with `owner_id` is this principal's."""
        return bool(self.object_id) and owner_id.lower() == self.object_id.lower()


def platform_auth_enabled(env: Mapping[str, str] | None = None) -> bool:
    """App Service sets WEBSITE_AUTH_ENABLED=True in the app's environment when auth is on."""
    return (env if env is not None else os.environ).get("WEBSITE_AUTH_ENABLED", "").lower() in (
        "true",
        "1",
    )


def signed_in_caller(headers: Mapping[str, str], auth_enabled: bool) -> Caller | None:
    """The principal of a user-route request; None when nobody (trustworthy) signed in."""
    if not auth_enabled:
        return None
    raw = _header(headers, PRINCIPAL_HEADER)
    if not raw or len(raw) > MAX_PRINCIPAL_BYTES:
        return None
    try:
        document = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return None
    claims = _claims(document)
    if claims is None:
        return None
    object_id = _first(claims, OBJECT_ID_CLAIMS)
    if not object_id:
        return None
    role_types = {*ROLE_CLAIMS, str(document.get("role_typ") or "roles")}
    roles = frozenset(v for t, v in claims if t in role_types)
    return Caller(object_id=object_id, name=owner_name(claims, object_id), roles=roles)


def owner_name(claims: list[tuple[str, str]], object_id: str) -> str:
    """The user name a build of this principal carries (owner field and tag): the sign-in
    name when it is a plain name, else the object id (service principals have no UPN)."""
    name = _first(claims, NAME_CLAIMS)
    return name if name and _OWNER_NAME.fullmatch(name) else object_id


def _claims(document: Any) -> list[tuple[str, str]] | None:
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        return None
    found = []
    for claim in document["claims"]:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str):
            found.append((claim["typ"], str(claim.get("val", ""))))
    return found


def _first(claims: list[tuple[str, str]], types: tuple[str, ...]) -> str:
    for wanted in types:
        for typ, value in claims:
            if typ == wanted and value:
                return value
    return ""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; the Functions type is not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value or ""
