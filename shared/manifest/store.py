"""Manifests in Blob storage: `manifests/<sha256>.json`, the SBOM beside it as
`<sha256>.cdx.json`. The name is the digest of the content, so a link can only mean one
manifest."""

from __future__ import annotations

import re
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError

from shared.artifacts import get_bytes, get_json, put_bytes, put_json
from shared.settings import Settings

MANIFESTS_CONTAINER = "manifests"
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ManifestNotFound(LookupError):
    """No manifest has this digest."""


def manifest_blob(digest: str) -> str:
    return f"{digest}.json"


def sbom_blob(digest: str) -> str:
    return f"{digest}.cdx.json"


def store_manifest(
    settings: Settings,
    credential: TokenCredential | None,
    manifest: dict[str, Any],
    sbom: bytes,
) -> str:
    """Store the manifest and its SBOM; answers the manifest's sha256."""
    ref = put_json(settings, credential, "", manifest, MANIFESTS_CONTAINER)
    put_bytes(settings, credential, MANIFESTS_CONTAINER, sbom_blob(ref.sha256), sbom)
    return ref.sha256


def load_manifest(
    settings: Settings, credential: TokenCredential | None, digest: str
) -> dict[str, Any]:
    """The manifest with this digest (checked against it); ManifestNotFound if none."""
    if not DIGEST.fullmatch(digest):
        raise ManifestNotFound(digest)
    try:
        document = get_json(settings, credential, manifest_blob(digest), MANIFESTS_CONTAINER)
    except ResourceNotFoundError:
        raise ManifestNotFound(digest) from None
    if not isinstance(document, dict):
        raise ManifestNotFound(digest)
    return document


def load_sbom(settings: Settings, credential: TokenCredential | None, digest: str) -> bytes:
    if not DIGEST.fullmatch(digest):
        raise ManifestNotFound(digest)
    try:
        return get_bytes(settings, credential, MANIFESTS_CONTAINER, sbom_blob(digest))
    except ResourceNotFoundError:
        raise ManifestNotFound(digest) from None
