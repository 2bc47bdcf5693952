"""The manifests API: read a manifest or its SBOM, compare two, and turn a rebuild request
({"from_manifest": ...}) into the build request it stands for."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from shared.api.builds import ApiResponse
from shared.api.builds import error_response as error
from shared.api.caller import Caller
from shared.manifest.compare import diff, summary
from shared.manifest.document import environment
from shared.manifest.rebuild import (
    RebuildRequest,
    changed_blobs,
    is_rebuild,
    request_from_manifest,
)
from shared.manifest.store import ManifestNotFound, load_manifest, load_sbom
from shared.models.parse import problems_from_validation_error
from shared.models.problems import Problem
from shared.models.request import MAX_REQUEST_BYTES
from shared.runtime import Runtime
from shared.state.store import BuildNotFound

logger = logging.getLogger(__name__)


def _not_found(field: str, digest: str) -> ApiResponse:
    # The same answer for a manifest of another owner's build.
    return error(404, "not found", field, f"there is no manifest {digest[:80]!r}")


def _readable(rt: Runtime, caller: Caller, digest: str, field: str) -> dict[str, Any] | ApiResponse:
    """The manifest, if the caller may see the build it records (administrators: any)."""
    try:
        manifest = load_manifest(rt.settings, rt.azure.credential, digest)
    except ManifestNotFound:
        return _not_found(field, digest)
    if caller.is_admin:
        return manifest
    build_id = str((manifest.get("build") or {}).get("id") or "")
    try:
        build = rt.store.get(build_id).build if build_id else None
    except BuildNotFound:
        build = None
    if build is None or not caller.owns(build.owner_id):
        return _not_found(field, digest)
    return manifest


def get_manifest(rt: Runtime, digest: str, caller: Caller) -> ApiResponse:
    found = _readable(rt, caller, digest, "sha256")
    return found if isinstance(found, ApiResponse) else ApiResponse(200, found)


def get_sbom(rt: Runtime, digest: str, caller: Caller) -> ApiResponse:
    found = _readable(rt, caller, digest, "sha256")
    if isinstance(found, ApiResponse):
        return found
    try:
        return ApiResponse(200, json.loads(load_sbom(rt.settings, rt.azure.credential, digest)))
    except ManifestNotFound:
        return error(404, "not found", "sha256", "this manifest has no SBOM")


def diff_manifests(rt: Runtime, a: str, b: str, caller: Caller) -> ApiResponse:
    """What changed from manifest a to manifest b (ids and timestamps left out)."""
    old = _readable(rt, caller, a, "a")
    if isinstance(old, ApiResponse):
        return old
    new = _readable(rt, caller, b, "b")
    if isinstance(new, ApiResponse):
        return new
    changes = diff(environment(old), environment(new))
    return ApiResponse(
        200,
        {"a": a, "b": b, "equal": not changes, "counts": summary(changes), "changes": changes},
    )


def rebuild_body(rt: Runtime, body: bytes, caller: Caller) -> bytes | ApiResponse:
    """`body` unchanged unless it asks for a rebuild; then the full build request it stands
    for, or the answer refusing it (400 naming the field, 404, 409 naming a changed blob).
    Every client body passes here (HTTP and the queue): one that sets `reproduce` itself,
    which only the expansion may, is refused (400 naming it)."""
    if len(body) > MAX_REQUEST_BYTES:
        return body  # the usual parser answers 413 without reading it
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body  # the usual parser answers with the details
    if isinstance(document, dict) and "reproduce" in document:
        # Only the expansion below sets it: the manifest read check runs on from_manifest.
        return error(
            400,
            "invalid request",
            "reproduce",
            "reproduce is set by the controller; to rebuild from a manifest, send "
            '{"from_manifest": ...}',
        )
    if not is_rebuild(document):
        return body
    try:
        ask = RebuildRequest.model_validate(document, strict=True)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, RebuildRequest)
        return ApiResponse(400, _problems_body("invalid request", problems))
    manifest = _readable(rt, caller, ask.from_manifest, "from_manifest")
    if isinstance(manifest, ApiResponse):
        return manifest
    request, problems = request_from_manifest(manifest, ask)
    if request is None:
        return ApiResponse(400, _problems_body("invalid request", problems))
    if ask.data == "exact":
        changed = changed_blobs(rt.settings, rt.azure.credential, manifest)
        if changed:
            logger.info(
                "rebuild of manifest %s refused: %d blob(s) changed",
                ask.from_manifest,
                len(changed),
            )
            return ApiResponse(409, _problems_body("data changed", changed))
    return json.dumps(request).encode()


def _problems_body(error_text: str, problems: list[Problem]) -> dict[str, Any]:
    return {"error": error_text, "problems": [p.model_dump() for p in problems]}
