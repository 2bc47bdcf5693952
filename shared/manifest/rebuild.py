"""Exact rebuild: a build request made from a manifest, the checks that its blobs are still
what was recorded, and the lock the install step installs from."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.manifest.document import GuestPythonPackage
from shared.models.fields import BuildName, ImageName, Owner
from shared.models.problems import Problem
from shared.settings import Settings, connection_has_secret, service_endpoint


class RebuildRequest(BaseModel):
    """POST /api/builds {"from_manifest": "<sha256>"}: repeat the build a manifest records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_manifest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the manifest to rebuild."
    )
    data: Literal["exact", "latest"] = Field(
        "exact", description="'latest' takes the blobs as they are now instead of refusing."
    )
    name: BuildName | None = Field(None, description="Build name; default: the original's.")
    owner: Owner | None = Field(None, description="Owner; default: the original's.")
    image_name: ImageName | None = Field(
        None, description="Managed image to capture; default: '<original>-r<UTC time>'."
    )


def is_rebuild(document: Any) -> bool:
    return isinstance(document, dict) and "from_manifest" in document


def request_from_manifest(
    manifest: dict[str, Any], ask: RebuildRequest, now: datetime | None = None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The build request that repeats `manifest`: its base image's exact version, the
    commits its repositories were at, a new image name; the packages come from the
    manifest's lock and (unless data is 'latest') exactly its blobs at install time."""
    original = manifest.get("request")
    if not isinstance(original, dict):
        return None, [Problem(field="from_manifest", message="the manifest holds no request")]
    python = manifest.get("python") or {}
    if python.get("installer") != "uv":
        return None, [
            Problem(
                field="from_manifest",
                message=f"an exact rebuild installs from a uv lock; this manifest's environment "
                f"was made with {python.get('installer')!r}",
            )
        ]
    request = copy.deepcopy(original)
    exact = (manifest.get("base_image") or {}).get("exact_version")
    if exact:
        request.setdefault("vm", {}).setdefault("image", {})["version"] = exact
    commits = {
        (r.get("url"), r.get("destination")): r.get("commit")
        for r in manifest.get("repositories") or []
    }
    for repo in request.get("repositories") or []:
        commit = commits.get((repo.get("url"), repo.get("destination")))
        if commit:
            repo["ref"] = commit
    # The data sources stay as asked (a prefix still places files as it did); with exact
    # data the install step pulls exactly the recorded blobs, each pinned to its sha256.
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    image = request.get("image") or {}
    base_name = str(image.get("name") or "image")
    request["image"] = {"name": ask.image_name or f"{base_name[: 80 - 16]}-r{stamp}"}
    if ask.name:
        request["name"] = ask.name
    if ask.owner:
        request["owner"] = ask.owner
    request["reproduce"] = {"from_manifest": ask.from_manifest, "data": ask.data}
    return request, []


def _data_service(connection: str, credential: TokenCredential | None) -> BlobServiceClient:
    if connection_has_secret(connection) or credential is None:
        return BlobServiceClient.from_connection_string(connection)
    return BlobServiceClient(service_endpoint(connection, "blob"), credential=credential)


def changed_blobs(
    settings: Settings, credential: TokenCredential | None, manifest: dict[str, Any]
) -> list[Problem]:
    """One problem per recorded blob that is gone or whose MD5 or size is not the recorded
    one (the ETag alone changes on a rewrite of the same bytes, so it is not the test)."""
    connection = settings.data_storage_connection
    sources = manifest.get("data") or []
    if not sources:
        return []
    if connection is None:
        return [Problem(field="data", message="no data storage account is configured")]
    service = _data_service(connection, credential)
    problems = []
    for index, source in enumerate(sources):
        container = service.get_container_client(str(source.get("container")))
        for blob in source.get("blobs") or []:
            field = f"data[{index}].blobs"
            name = str(blob.get("name"))
            try:
                props = container.get_blob_client(name).get_blob_properties()
            except ResourceNotFoundError:
                problems.append(_changed(field, source, name, "is gone"))
                continue
            md5 = props.content_settings.content_md5
            now_md5 = _b64(md5) if md5 else None
            # Without a stored MD5 only the ETag can tell.
            same = now_md5 == blob.get("md5") if now_md5 else props.etag == blob.get("etag")
            if not same or props.size != blob.get("size"):
                problems.append(
                    _changed(
                        field,
                        source,
                        name,
                        f"changed since the manifest (MD5 {blob.get('md5')} -> {now_md5}, "
                        f"{blob.get('size')} -> {props.size} bytes)",
                    )
                )
    return problems


def _b64(md5: bytes | bytearray) -> str:
    import base64

    return base64.b64encode(bytes(md5)).decode()


def _changed(field: str, source: dict[str, Any], name: str, what: str) -> Problem:
    return Problem(
        field=field,
        message=f"blob {name!r} in container {source.get('container')!r} {what}; rebuild "
        'with "data": "latest" to take the data as it is now',
    )


class UnsafeLockEntry(ValueError):
    """A recorded package that is not a plain pin: written out, it could add lock lines."""


def locked_requirements(manifest: dict[str, Any]) -> tuple[str, bool]:
    """The manifest's Python packages as a requirements file of exact pins (with the index's
    hashes when every package has some), and whether hashes can be required. UnsafeLockEntry
    naming the entry when one is not a plain pin (name, PEP 440 version, sha256 hashes)."""
    packages = manifest.get("python_packages") or []
    for index, package in enumerate(packages):
        _check_pin(index, package)
    hashed = bool(packages) and all(p.get("hashes") for p in packages)
    lines = []
    for package in sorted(packages, key=lambda p: str(p["name"]).lower()):
        line = f"{package['name']}=={package['version']}"
        if hashed:
            line += "".join(f" --hash={h}" for h in package["hashes"])
        lines.append(line)
    return "\n".join(lines) + "\n", hashed


def _check_pin(index: int, package: Any) -> None:
    """The guest report's own check (GuestPythonPackage), again on what was stored."""
    try:
        GuestPythonPackage.model_validate(package, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        where = f"python_packages[{index}]" + (f".{field}" if field else "")
        raise UnsafeLockEntry(f"{where}: {first['msg']}") from None


def pinned_blobs(manifest: dict[str, Any], index: int) -> list[dict[str, str]]:
    """The blobs of data source `index` with the sha256 the pull must find."""
    sources = manifest.get("data") or []
    if index >= len(sources):
        return []
    return [{"name": b["name"], "sha256": b["sha256"]} for b in sources[index].get("blobs") or []]
