"""Key Vault's secrets data plane for localcloud: one soft-delete vault on its own HTTPS port.

What `azure-keyvault-secrets`' SecretClient calls: set (PUT /secrets/{name}), get
(GET /secrets/{name}[/{version}]), delete (DELETE /secrets/{name} → the deleted-secret bundle),
get deleted (GET /deletedsecrets/{name}), purge (DELETE /deletedsecrets/{name} → 204) and recover
(POST /deletedsecrets/{name}/recover). Every call needs `?api-version=`.

Authentication is Key Vault's challenge protocol: a request without a valid token gets 401 with
`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"`; the
client asks the managed-identity endpoint for a token of that resource and sends the request
again. The SDK accepts a resource only when the vault's host ends with "." + the resource's host
(myvault.vault.azure.net → vault.azure.net), port included unless it is 443. The vault is at
`https://127.0.0.1:<port>/`, so its resource is `https://0.0.1:<port>`: the same rule, applied to
a dotted address. Nothing ever connects to that resource URL; it is only the token audience.

Authorization (when the emulator has a role file and the vault a resource id): the vault uses
the Azure RBAC permission model, each call needs its data action at
`<vault id>/secrets/<name>` (learn.microsoft.com/azure/role-based-access-control/permissions/
security#microsoftkeyvault; reading a deleted secret's bundle is mapped to readMetadata, an
inference), and a refusal is Key Vault's 403 `Forbidden` with inner code `ForbiddenByRbac`
(message as in piyushsachdeva/Terraform_AKS#2).

Secrets persist in `<state>/arm/keyvault.json`, mode 0600, rewritten atomically on every change.
Secret values never appear in logs or error messages.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from localcloud.arm.fault_layer import with_faults
from localcloud.arm.identity import TokenIssuer
from localcloud.faults import FaultInjector

TENANT_ID = "00000000-0000-4000-8000-0000000a11b0"  # localcloud's one fake tenant
RECOVERABLE_DAYS = 7
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def resource_for(vault_url: str) -> str:
    """The token audience a vault at `vault_url` announces: its host without the first label."""
    parts = urlsplit(vault_url)
    host = parts.hostname or ""
    parent = host.split(".", 1)[1] if "." in host else host
    port = f":{parts.port}" if parts.port and parts.port != 443 else ""
    return f"https://{parent}{port}"


class VaultError(Exception):
    """A refusal answered with Key Vault's body `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return web.json_response({"error": error}, status=self.status, headers=headers)


def _not_found(name: str) -> VaultError:
    return VaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command.",
    )


def _deleted_not_found(name: str) -> VaultError:
    return VaultError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


@dataclass
class VaultState:
    """Live secrets (every version, newest last) and deleted ones, by lower-case name."""

    path: Path
    live: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> None:
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.live = data.get("live", {})
            self.deleted = data.get("deleted", {})

    def save(self) -> None:
        """Write atomically through a file created 0600 (it holds secret values)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"live": self.live, "deleted": self.deleted}, handle)
        os.replace(tmp, self.path)


class Vault:
    """One vault: its state, its address (known once the port is bound) and token checks."""

    def __init__(
        self, state_path: Path, issuer: TokenIssuer, resource_id: str | None = None
    ) -> None:
        self.state = VaultState(state_path)
        self.state.load()
        self.issuer = issuer
        # The emulator's fault plan (`VAULT <METHOD>` keys); start_emulator shares it.
        self.faults = FaultInjector()
        self.url = ""  # https://127.0.0.1:<port>, set by the server after binding
        self.resource_id = resource_id  # its ARM id: where role assignments name it

    @property
    def resource(self) -> str:
        return resource_for(self.url)

    def challenge(self) -> str:
        authority = (
            f"{self.url}/{TENANT_ID}"  # never contacted: managed identity needs no authority
        )
        return f'Bearer authorization="{authority}", resource="{self.resource}"'

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; Key Vault's 401 errors unless it is valid for this vault."""
        if not authorization:
            raise VaultError(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
            )
        claims = self.issuer.claims_of(authorization)
        if claims is None:
            raise VaultError(401, "Unauthorized", "AKV10032: Invalid or expired token.")
        if str(claims["aud"]).rstrip("/") != self.resource:
            raise VaultError(
                401, "Unauthorized", f"AKV10022: Invalid audience. Expected {self.resource}."
            )
        return claims

    def check_role(self, claims: dict[str, Any], action: str, name: str) -> None:
        """Key Vault's 403 unless the caller's roles grant the data action on the secret."""
        authz = self.issuer.authorization
        if authz is None or self.resource_id is None:
            return
        resource = f"{self.resource_id}/secrets/{name}"
        object_id = str(claims.get("oid") or "")
        if authz.allows(object_id, action, resource, data=True):
            return
        vault_name = self.resource_id.rstrip("/").rsplit("/", 1)[-1]
        raise VaultError(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, "
            "deny assignments or role definitions were changed recently, please observe "
            f"propagation time.\r\nCaller: appid={claims.get('appid', '')};oid={object_id}"
            f"\r\nAction: '{action}'\r\nResource: '{resource.lower()}'\r\nAssignment: "
            "(not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' "
            f"\r\nVault: {vault_name}\r\n",
            inner="ForbiddenByRbac",
        )

    # --- bundles ------------------------------------------------------------------------------
    def _bundle(self, version: dict[str, Any]) -> dict[str, Any]:
        name, version_id = version["name"], version["version"]
        bundle: dict[str, Any] = {
            "value": version["value"],
            "id": f"{self.url}/secrets/{name}/{version_id}",
            "attributes": {
                "enabled": True,
                "created": version["created"],
                "updated": version["created"],
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": RECOVERABLE_DAYS,
            },
        }
        if version.get("contentType"):
            bundle["contentType"] = version["contentType"]
        if version.get("tags"):
            bundle["tags"] = version["tags"]
        return bundle

    def _deleted_bundle(self, key: str) -> dict[str, Any]:
        record = self.deleted_record(key)
        bundle = self._bundle(record["versions"][-1])
        bundle["recoveryId"] = f"{self.url}/deletedsecrets/{record['versions'][-1]['name']}"
        bundle["deletedDate"] = record["deletedDate"]
        bundle["scheduledPurgeDate"] = record["deletedDate"] + RECOVERABLE_DAYS * 86400
        return bundle

    def deleted_record(self, key: str) -> dict[str, Any]:
        return self.state.deleted[key]

    # --- operations -----------------------------------------------------------------------------
    def set(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        key = name.lower()
        if key in self.state.deleted:
            raise VaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        value = body.get("value")
        if not isinstance(value, str):
            raise VaultError(400, "BadParameter", "The parameter 'value' is required.")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or any(len(str(v)) > 256 for v in tags.values()):
            raise VaultError(400, "BadParameter", "Tag values are limited to 256 characters.")
        versions = self.state.live.setdefault(key, [])
        versions.append(
            {
                "name": versions[0]["name"] if versions else name,
                "version": secrets.token_hex(16),
                "value": value,
                "contentType": body.get("contentType"),
                "tags": tags,
                "created": int(time.time()),
            }
        )
        self.state.save()
        return self._bundle(versions[-1])

    def get(self, name: str, version: str) -> dict[str, Any]:
        versions = self.state.live.get(name.lower())
        if not versions:
            raise _not_found(name)
        if not version:
            return self._bundle(versions[-1])
        for item in versions:
            if item["version"] == version:
                return self._bundle(item)
        raise _not_found(f"{name}/{version}")

    def delete(self, name: str) -> dict[str, Any]:
        key = name.lower()
        versions = self.state.live.pop(key, None)
        if not versions:
            raise _not_found(name)
        self.state.deleted[key] = {"versions": versions, "deletedDate": int(time.time())}
        self.state.save()
        bundle = self._deleted_bundle(key)
        del bundle["value"]  # a deleted secret's value is not handed out again
        return bundle

    def get_deleted(self, name: str) -> dict[str, Any]:
        key = name.lower()
        if key not in self.state.deleted:
            raise _deleted_not_found(name)
        bundle = self._deleted_bundle(key)
        del bundle["value"]  # Key Vault does not return a deleted secret's value
        return bundle

    def purge(self, name: str) -> None:
        if self.state.deleted.pop(name.lower(), None) is None:
            raise _deleted_not_found(name)
        self.state.save()

    def recover(self, name: str) -> dict[str, Any]:
        key = name.lower()
        record = self.state.deleted.pop(key, None)
        if record is None:
            raise _deleted_not_found(name)
        self.state.live[key] = record["versions"]
        self.state.save()
        bundle = self._bundle(record["versions"][-1])
        del bundle["value"]
        return bundle


VAULT_KEY = web.AppKey("vault", Vault)


def build_vault_app(vault: Vault) -> web.Application:
    """The vault's HTTPS application (serve it over TLS at `vault.url`)."""
    app = web.Application(middlewares=[_vault_middleware], client_max_size=1024**2)
    app[VAULT_KEY] = vault
    app.router.add_put("/secrets/{name}", _set)
    app.router.add_get("/secrets/{name}", _get)
    app.router.add_get("/secrets/{name}/{version:[^/]*}", _get)
    app.router.add_delete("/secrets/{name}", _delete)
    app.router.add_get("/deletedsecrets/{name}", _get_deleted)
    app.router.add_delete("/deletedsecrets/{name}", _purge)
    app.router.add_post("/deletedsecrets/{name}/recover", _recover)
    return app


@web.middleware
async def _vault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    vault = request.app[VAULT_KEY]
    try:
        try:
            claims = vault.authorize(request.headers.get("Authorization"))
        except VaultError as error:
            return error.response({"WWW-Authenticate": vault.challenge()})
        if not request.query.get("api-version"):
            raise VaultError(
                400, "BadParameter", "The request URI is missing the api-version parameter."
            )
        name = request.match_info.get("name", "")
        if name and not _NAME.match(name):
            raise VaultError(
                400,
                "BadParameter",
                "The request URI contains an invalid name: names are 1-127 letters, digits and "
                "dashes.",
            )
        vault.check_role(claims, _data_action(request), name)
        return await with_faults(vault.faults, f"VAULT {request.method}", request, handler)
    except VaultError as error:
        return error.response()
    except web.HTTPException:
        raise
    except json.JSONDecodeError:
        return VaultError(400, "BadParameter", "The request body is not valid JSON.").response()


_SECRETS = "Microsoft.KeyVault/vaults/secrets"


def _data_action(request: web.Request) -> str:
    """The data action of a call (routes above: live secrets, deleted secrets, recover)."""
    deleted = request.path.startswith("/deletedsecrets/")
    if request.method == "POST":
        return f"{_SECRETS}/recover/action"
    if deleted and request.method == "DELETE":
        return f"{_SECRETS}/purge/action"
    if deleted:
        return f"{_SECRETS}/readMetadata/action"
    if request.method == "PUT":
        return f"{_SECRETS}/setSecret/action"
    if request.method == "DELETE":
        return f"{_SECRETS}/delete"
    return f"{_SECRETS}/getSecret/action"


async def _set(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body, dict):
        raise VaultError(400, "BadParameter", "The request body must be a JSON object.")
    return web.json_response(request.app[VAULT_KEY].set(request.match_info["name"], body))


async def _get(request: web.Request) -> web.Response:
    name, version = request.match_info["name"], request.match_info.get("version", "")
    return web.json_response(request.app[VAULT_KEY].get(name, version))


async def _delete(request: web.Request) -> web.Response:
    return web.json_response(request.app[VAULT_KEY].delete(request.match_info["name"]))


async def _get_deleted(request: web.Request) -> web.Response:
    return web.json_response(request.app[VAULT_KEY].get_deleted(request.match_info["name"]))


async def _purge(request: web.Request) -> web.Response:
    request.app[VAULT_KEY].purge(request.match_info["name"])
    return web.Response(status=204)


async def _recover(request: web.Request) -> web.Response:
    return web.json_response(request.app[VAULT_KEY].recover(request.match_info["name"]))
