"""Per-build key pairs in Azure Key Vault: one secret per build and kind.

The secret `labimage-<build id>-<kind>` holds the OpenSSH private key as its value (content type
`application/x-openssh-private-key`); its tag `ssh-public-key` holds the authorized_keys line.
Key Vault names are letters, digits and dashes, compared case-insensitively: build ids with an
underscore are refused, and ids differing only in case would share a secret (labimage's own ids
are lower-case). Deleting soft-deletes, then purges when the vault allows it.

Key material never reaches a log or an exception: errors name the secret and the service's
status and code only, and are raised without the SDK's exception chained (it carries the
request and response).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient

from shared.errors import PermanentError, StepError, TemporaryError
from shared.ssh.keys import KeyKind, KeyPair, _checked_build_id

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-openssh-private-key"
PUBLIC_KEY_TAG = "ssh-public-key"
TAG_VALUE_LIMIT = 256  # Key Vault's limit on one tag value
KINDS: tuple[KeyKind, ...] = ("client", "host")
RETRY_AFTER_S = 15.0


def secret_name(build_id: str, kind: KeyKind) -> str:
    """The Key Vault secret holding one key pair of a build."""
    checked = _checked_build_id(build_id)
    if "_" in checked:
        raise ValueError("build id is not a valid Key Vault name part (letters, digits, '-')")
    return f"labimage-{checked}-{kind}"


def download_command(vault_url: str, build_id: str, file: str) -> str:
    """An `az` command that saves the build's client private key to `file`, readable by you only.

    On Azure the vault is named by its host's first label; a vault at a bare address (localcloud)
    is named by the secret's full id instead.
    """
    name = secret_name(build_id, "client")
    host = urlsplit(vault_url).hostname or ""
    if host and not host.replace(".", "").isdigit():
        target = f"--vault-name {host.split('.', 1)[0]} --name {name}"
    else:
        target = f"--id {vault_url.rstrip('/')}/secrets/{name}"
    return f"az keyvault secret download {target} --file {file} && chmod 600 {file}"


class KeyVaultKeyStore:
    """A KeyStore (shared.ssh.keys) on Key Vault's secrets, reached with `credential`."""

    def __init__(
        self, vault_url: str, credential: TokenCredential, ca_bundle: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {}
        if ca_bundle:  # localcloud's vault has its own CA; Azure's needs none
            kwargs["connection_verify"] = ca_bundle
        self.vault_url = vault_url
        self.client = SecretClient(vault_url, credential, **kwargs)

    def save(self, build_id: str, kind: KeyKind, pair: KeyPair) -> None:
        """Store the pair as a new version of its secret (recovering a soft-deleted one first)."""
        name = secret_name(build_id, kind)
        if len(pair.public_line) > TAG_VALUE_LIMIT:
            raise ValueError(f"the {kind} public key line is longer than a Key Vault tag allows")
        tags = {PUBLIC_KEY_TAG: pair.public_line, "labimage-build": build_id, "kind": kind}
        try:
            try:
                self.client.set_secret(
                    name, pair.private_openssh, content_type=CONTENT_TYPE, tags=tags
                )
            except HttpResponseError as error:
                if error.status_code != 409:
                    raise
                # Deleted but not purged (purge refused, or still pending): the name is taken
                # until it is recovered, and a recovered secret takes a new version.
                self.client.begin_recover_deleted_secret(name).wait()
                self.client.set_secret(
                    name, pair.private_openssh, content_type=CONTENT_TYPE, tags=tags
                )
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _step_error("store", name, error) from None

    def load(self, build_id: str, kind: KeyKind) -> KeyPair:
        """The stored pair; KeyError when the secret is missing or deleted."""
        name = secret_name(build_id, kind)
        try:
            secret = self.client.get_secret(name)
        except ResourceNotFoundError:
            raise KeyError(f"no {kind} key stored for build {build_id}") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _step_error("read", name, error) from None
        public = (secret.properties.tags or {}).get(PUBLIC_KEY_TAG)
        if not secret.value or not public:
            raise PermanentError(f"Key Vault secret {name} is not a labimage key pair")
        return KeyPair(private_openssh=secret.value, public_line=public)

    def delete(self, build_id: str) -> None:
        """Delete both secrets of the build and purge them when allowed. Idempotent."""
        for kind in KINDS:
            name = secret_name(build_id, kind)
            try:
                self._delete_and_purge(name)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                raise _step_error("delete", name, error) from None

    def _delete_and_purge(self, name: str) -> None:
        # Not found: never stored, or deleted before (it may still wait to be purged).
        with contextlib.suppress(ResourceNotFoundError):
            self.client.begin_delete_secret(name).wait()
        try:
            self.client.purge_deleted_secret(name)
        except ResourceNotFoundError:
            pass
        except HttpResponseError as error:
            if error.status_code not in (403, 409):
                raise
            # Purge protection, or an identity without purge permission: the vault removes the
            # secret itself when its retention ends.
            logger.info(
                "Key Vault kept deleted secret %s (purge refused: %s)", name, error.status_code
            )


def _step_error(action: str, name: str, error: Exception) -> StepError:
    """A retryable error for transport failures, throttling and server errors; else permanent."""
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        code = getattr(error.error, "code", None) or error.reason or ""
        message = f"Key Vault could not {action} secret {name}: {error.status_code} {code}".strip()
        if error.status_code == 429 or error.status_code >= 500:
            return TemporaryError(message, RETRY_AFTER_S)
        return PermanentError(message)
    return TemporaryError(f"Key Vault could not {action} secret {name}: unreachable", RETRY_AFTER_S)
