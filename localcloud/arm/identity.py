"""Managed identity for localcloud: an App Service style token endpoint and token checks.

azure-identity's ManagedIdentityCredential (through MSAL) sends, when IDENTITY_ENDPOINT and
IDENTITY_HEADER are set: `GET <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=<resource>`
with headers `X-IDENTITY-HEADER: <secret>` and `Metadata: true`, and expects
`{"access_token", "expires_on" (epoch seconds), "resource", "token_type"}`.

Tokens are HMAC-signed with a key kept in the state folder, so they stay valid across an
emulator restart (clients cache them for an hour). They name the principal they were issued to
(`oid`, `appid`, as Entra ID tokens do), which the emulator's authorization checks. With an
authorization file the request selects a known identity, as on App Service: `client_id`,
`object_id` or `principal_id` in the query (azure-identity sends `client_id` for
`AZURE_CLIENT_ID`); a request naming none or an unknown one gets 400. Without a file every
token is issued to one default identity, and nothing is checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.arm.authz import Authorization
from localcloud.arm.errors import ArmError

TOKEN_LIFETIME_SECONDS = 3600
DEFAULT_IDENTITY = "localcloud-managed-identity"  # without an authorization file
# Audiences ARM accepts for a management token.
MANAGEMENT_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
    }
)


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


@dataclass
class TokenIssuer:
    """Issues and verifies bearer tokens; the identity header is the caller's shared secret."""

    signing_key: bytes
    identity_header: str
    authorization: Authorization | None = None  # None: one default identity, no checks

    @classmethod
    def in_folder(cls, arm_dir: Path) -> TokenIssuer:
        """Reuse (or create) `identity-header` and `token-key` files under `arm_dir`."""
        header = _load_or_create_secret(arm_dir / "identity-header")
        key = _load_or_create_secret(arm_dir / "token-key")
        return cls(key.encode(), header)

    def identity_for(self, client_id: str | None, object_id: str | None) -> tuple[str, str] | None:
        """(client id, object id) of the identity a token request selects; None: unknown."""
        if self.authorization is None:
            return DEFAULT_IDENTITY, DEFAULT_IDENTITY
        principal = self.authorization.principal(client_id, object_id)
        return None if principal is None else (principal.client_id, principal.principal_id)

    def issue(
        self, resource: str, identity: tuple[str, str] = (DEFAULT_IDENTITY, DEFAULT_IDENTITY)
    ) -> dict[str, str]:
        expires_on = int(time.time()) + TOKEN_LIFETIME_SECONDS
        client_id, object_id = identity
        claims = {
            "aud": resource,
            "exp": expires_on,
            "appid": client_id,
            "oid": object_id,
            "nonce": secrets.token_hex(8),
        }
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"{payload}.{self._sign(payload)}"
        return {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The claims of `authorization`; ARM's 401 errors unless it is a valid management
        bearer token."""
        if not authorization:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = authorization.partition(" ")
        payload, _, signature = token.strip().partition(".")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            signature.encode(), self._sign(payload).encode()
        ):
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        if int(claims["exp"]) < time.time():
            raise ArmError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        if claims["aud"] not in MANAGEMENT_AUDIENCES:
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims['aud']}'.",
            )
        return dict(claims)

    def claims_of(self, authorization: str | None) -> dict[str, Any] | None:
        """The claims of a valid, unexpired bearer token in `authorization`; None otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        payload, _, signature = token.strip().partition(".")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            signature.encode(), self._sign(payload).encode()
        ):
            return None
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        if int(claims["exp"]) < time.time():
            return None
        return dict(claims)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.signing_key, payload.encode(), hashlib.sha256).hexdigest()


def build_identity_app(issuer: TokenIssuer) -> web.Application:
    """The plain-HTTP loopback token endpoint (path `/msi/token`, as App Service uses)."""

    async def token(request: web.Request) -> web.Response:
        supplied = request.headers.get("X-IDENTITY-HEADER", "")
        if not hmac.compare_digest(supplied.encode(), issuer.identity_header.encode()):
            return web.json_response(
                {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."},
                status=401,
            )
        resource = request.query.get("resource")
        if not resource or request.query.get("api-version") != "2019-08-01":
            return web.json_response(
                {"statusCode": 400, "message": "resource and api-version=2019-08-01 required."},
                status=400,
            )
        query = request.query
        identity = issuer.identity_for(
            query.get("client_id"), query.get("object_id") or query.get("principal_id")
        )
        if identity is None:
            return web.json_response(
                {"statusCode": 400, "message": "No managed identity matches the request."},
                status=400,
            )
        return web.json_response(issuer.issue(resource, identity))

    app = web.Application()
    app.router.add_get("/msi/token", token)
    return app
