"""Documents too large for a build record (a Table entity holds at most 1 MiB, a property
64 KiB), kept as content-addressed JSON blobs in the controller's own storage account.

A blob's name is its SHA-256, so writing the same document twice is harmless and a record
holding the digest can never point at other content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.settings import Settings, connection_has_secret, service_endpoint

ARTIFACTS_CONTAINER = "labimage-artifacts"


@dataclass(frozen=True)
class ArtifactRef:
    blob: str  # name inside ARTIFACTS_CONTAINER
    sha256: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"blob": self.blob, "sha256": self.sha256, "bytes": self.bytes}


def blob_service(settings: Settings, credential: TokenCredential | None) -> BlobServiceClient:
    connection = settings.storage_connection
    if connection_has_secret(connection) or credential is None:
        return BlobServiceClient.from_connection_string(connection)
    return BlobServiceClient(service_endpoint(connection, "blob"), credential=credential)


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def put_json(
    settings: Settings,
    credential: TokenCredential | None,
    kind: str,
    document: Any,
    container_name: str = ARTIFACTS_CONTAINER,
) -> ArtifactRef:
    """Store `document` as `<kind>/<sha256>.json` (`<sha256>.json` for kind ""); returns
    where, and its digest."""
    data = canonical(document)
    digest = hashlib.sha256(data).hexdigest()
    name = f"{kind}/{digest}.json" if kind else f"{digest}.json"
    put_bytes(settings, credential, container_name, name, data)
    return ArtifactRef(name, digest, len(data))


def put_bytes(
    settings: Settings,
    credential: TokenCredential | None,
    container_name: str,
    name: str,
    data: bytes,
    content_type: str = "application/json",
) -> None:
    """Write one blob (the container is made on first use)."""
    container = blob_service(settings, credential).get_container_client(container_name)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    container.upload_blob(
        name, data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
    )


def get_bytes(
    settings: Settings, credential: TokenCredential | None, container_name: str, name: str
) -> bytes:
    """One blob's content; ResourceNotFoundError when it is not there."""
    container = blob_service(settings, credential).get_container_client(container_name)
    return container.download_blob(name).readall()


def get_json(
    settings: Settings,
    credential: TokenCredential | None,
    blob: str,
    container_name: str = ARTIFACTS_CONTAINER,
) -> Any:
    """The document stored under `blob`; its digest is checked against its name."""
    data = get_bytes(settings, credential, container_name, blob)
    expected = blob.rsplit("/", 1)[-1].removesuffix(".json")
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"artifact {blob} does not match its digest")
    return json.loads(data)
