"""App Service authentication ("Easy Auth") in front of the local Functions host.

It reads the `properties` of a site's `Microsoft.Web/sites/config` `authsettingsV2` resource
(the same JSON shape the Bicep deploys) and behaves as App Service does with the Microsoft
identity provider:

- every `X-MS-CLIENT-PRINCIPAL*` and `X-MS-TOKEN-*` header a client sends is removed ("External
  requests aren't allowed to set these headers, so they're present only if App Service sets
  them": Work with user identities in Azure App Service authentication);
- a valid bearer token becomes the headers `X-MS-CLIENT-PRINCIPAL` (base64 JSON: auth_typ,
  claims [{typ, val}], name_typ, role_typ; claims mapped as the platform maps them, e.g. `oid`
  to `http://schemas.microsoft.com/identity/claims/objectidentifier`), `-ID`, `-NAME`, `-IDP`;
- `globalValidation.requireAuthentication` with `unauthenticatedClientAction` Return401/403
  answers anonymous callers itself, except on `excludedPaths` (exact paths, or a trailing `/*`
  for everything under a folder, as documented for excludedPaths);
- the app sees `WEBSITE_AUTH_ENABLED=True` in its environment, as on App Service.

localcloud is its own identity provider: tokens are HS256 JWTs signed with a key in the state
folder, minted for a named test principal (`python -m localcloud token ...`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

SIGNING_KEY_FILE = "signin-key"
ISSUER = "https://localcloud.invalid/signin/v2.0"
DEFAULT_AUDIENCE = "api://localcloud-functions"
TOKEN_LIFETIME_S = 3600
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TENANT_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"
NAME_TYPE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
LOCAL_TENANT = "00000000-0000-4000-8000-00000000a11b"
# Token claims App Service renames when it builds the principal (the default claims mapping).
_MAPPED = {"oid": OBJECT_ID_CLAIM, "tid": TENANT_CLAIM}
_STRIPPED_PREFIXES = ("x-ms-client-principal", "x-ms-token-")


@dataclass(frozen=True)
class AuthSettings:
    """What of authsettingsV2 the emulation applies."""

    enabled: bool = False
    require_authentication: bool = False
    unauthenticated_action: str = "RedirectToLoginPage"
    excluded_paths: tuple[str, ...] = ()
    allowed_audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AuthSettings:
        """From the `properties` object of authsettingsV2 (or the whole resource)."""
        props = document.get("properties", document)
        platform = props.get("platform") or {}
        validation = props.get("globalValidation") or {}
        aad = (props.get("identityProviders") or {}).get("azureActiveDirectory") or {}
        audiences = ((aad.get("validation") or {}).get("allowedAudiences")) or []
        return cls(
            enabled=bool(platform.get("enabled")),
            require_authentication=bool(validation.get("requireAuthentication")),
            unauthenticated_action=str(
                validation.get("unauthenticatedClientAction") or "RedirectToLoginPage"
            ),
            excluded_paths=tuple(str(p) for p in validation.get("excludedPaths") or ()),
            allowed_audiences=(*(str(a) for a in audiences), DEFAULT_AUDIENCE),
        )

    @classmethod
    def from_file(cls, path: Path | None) -> AuthSettings:
        return cls() if path is None else cls.from_json(json.loads(path.read_text()))

    def excluded(self, path: str) -> bool:
        lowered = path.lower()
        for pattern in self.excluded_paths:
            pattern = pattern.lower()
            if pattern.endswith("/*") and lowered.startswith(pattern[:-1]):
                return True
            if lowered == pattern:
                return True
        return False


@dataclass(frozen=True)
class Outcome:
    """What the front does with a request: answer it itself, or pass these headers on."""

    headers: dict[str, str]
    status: int | None = None  # set: answer with this status instead of calling the app
    location: str | None = None


@dataclass
class EasyAuth:
    settings: AuthSettings
    signing_key: bytes

    @classmethod
    def in_folder(cls, settings: AuthSettings, folder: Path) -> EasyAuth:
        return cls(settings, load_signing_key(folder))

    def apply(self, path: str, headers: Mapping[str, str]) -> Outcome:
        """The headers the app gets for this request, or the answer App Service gives."""
        if not self.settings.enabled:
            return Outcome(dict(headers))
        passed = {k: v for k, v in headers.items() if not k.lower().startswith(_STRIPPED_PREFIXES)}
        claims = self._verified_claims(headers.get("Authorization") or "")
        if claims is not None:
            passed.update(principal_headers(claims))
            return Outcome(passed)
        if not self.settings.require_authentication or self.settings.excluded(path):
            return Outcome(passed)
        action = self.settings.unauthenticated_action
        if action == "AllowAnonymous":
            return Outcome(passed)
        if action == "Return403":
            return Outcome(passed, 403)
        if action == "RedirectToLoginPage":
            return Outcome(passed, 302, "/.auth/login/aad")
        return Outcome(passed, 401)

    def _verified_claims(self, authorization: str) -> dict[str, Any] | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self.signing_key,
                algorithms=["HS256"],
                audience=list(self.settings.allowed_audiences),
                issuer=ISSUER,
                options={"require": ["exp", "aud", "iss", "oid"]},
            )
        except jwt.PyJWTError:
            return None
        return claims


def principal_headers(claims: Mapping[str, Any]) -> dict[str, str]:
    """The X-MS-CLIENT-PRINCIPAL headers App Service makes from a token's claims."""
    listed: list[dict[str, str]] = []
    for name, value in claims.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            listed.append({"typ": _MAPPED.get(name, name), "val": str(item)})
    principal = {
        "auth_typ": "aad",
        "claims": listed,
        "name_typ": NAME_TYPE,
        "role_typ": ROLE_TYPE,
    }
    name = claims.get("preferred_username") or claims.get("name") or claims.get("oid") or ""
    return {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-ID": str(claims.get("oid", "")),
        "X-MS-CLIENT-PRINCIPAL-NAME": str(name),
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }


def load_signing_key(folder: Path) -> bytes:
    """The token signing key of this state folder, made (0600) on first use."""
    path = folder / SIGNING_KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def mint_token(
    folder: Path,
    name: str,
    object_id: str | None = None,
    roles: tuple[str, ...] = (),
    audience: str = DEFAULT_AUDIENCE,
    lifetime_s: int = TOKEN_LIFETIME_S,
) -> str:
    """A bearer token for a test principal, as Microsoft Entra ID would issue for the app."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "tid": LOCAL_TENANT,
        "oid": object_id or _stable_object_id(name),
        "name": name,
        "preferred_username": name,
        "ver": "2.0",
    }
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, load_signing_key(folder), algorithm="HS256")


def _stable_object_id(name: str) -> str:
    """A GUID derived from the name, so one test principal keeps one object id."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"localcloud-principal:{name}"))
