"""The images API: list, show and delete the images labimage builds made.

Who sees what follows the builds API: an image belongs to the build that made it (its
`labimage-build` tag); a user sees and deletes images of their own builds, an administrator
(or key holder) all of them. An image without the tag is not labimage's: never listed, never
deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.azure import image_catalog
from shared.azure.image_catalog import CatalogImage
from shared.azure.image_users import image_users
from shared.errors import PermanentError, StepError
from shared.models import names
from shared.runtime import Runtime
from shared.state.record import Build
from shared.state.store import BuildNotFound

logger = logging.getLogger(__name__)

# Issue 15 links an image to its manifest through a tag; until that lands the digest is null.
MANIFEST_TAG = "labimage-manifest"
SETTLED = {"Succeeded", "Failed"}


def _error(status: int, error: str, field: str, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": error, "problems": [{"field": field, "message": message}]})


def _build_of(rt: Runtime, image: CatalogImage) -> Build | None:
    try:
        return rt.store.get(image.build_id).build
    except BuildNotFound:
        return None


def _may_manage(caller: Caller, build: Build | None) -> bool:
    return caller.is_admin or (build is not None and caller.owns(build.owner_id))


def image_view(image: CatalogImage, build: Build | None) -> dict[str, Any]:
    """What the API shows of one image."""
    created = image.created or (build.updated_at if build is not None else None)
    return {
        "name": image.name,
        "kind": image.kind,
        "id": image.id,
        "state": image.provisioning_state,
        "build_id": image.build_id,
        "request_name": build.request.get("name") if build is not None else None,
        "owner": build.owner if build is not None else image.tags.get("owner"),
        "project": image.tags.get("project"),
        "created": created.isoformat() if created else None,
        "size_gb": image.size_gb,
        "manifest_digest": image.tags.get(MANIFEST_TAG),
    }


def _unavailable(exc: StepError) -> ApiResponse:
    logger.warning("images: Resource Manager call failed: %s", exc)
    return _error(503, "unavailable", "", f"the Azure call failed, try again later: {exc}")


def list_images(rt: Runtime, caller: Caller) -> ApiResponse:
    """The labimage-made images the caller may see (all of them for an administrator)."""
    try:
        found = image_catalog.list_images(rt.azure)
    except StepError as exc:
        return _unavailable(exc)
    listed = []
    for image in found:
        build = _build_of(rt, image)
        if _may_manage(caller, build):
            listed.append(image_view(image, build))
    return ApiResponse(200, {"images": listed})


def _name_problem(name: str) -> str | None:
    """Why `name` cannot name an image (checked with the request's own name rules)."""
    if len(name) > 3 * 80 + 2:
        return "names are at most 80 characters (a gallery version's three parts each)"
    parts = image_catalog.split_gallery_name(name)
    if parts is None and image_catalog.GALLERY_SEPARATOR in name:
        return "a gallery version is named <gallery>:<definition>:<version>"
    checks = (
        [(names.check_image_name, name)]
        if parts is None
        else list(
            zip(
                (
                    names.check_gallery_name,
                    names.check_gallery_definition,
                    names.check_gallery_version,
                ),
                parts,
                strict=True,
            )
        )
    )
    for check, value in checks:
        if len(value) > 80:
            return "names are at most 80 characters"
        try:
            check(value)
        except ValueError as exc:
            return str(exc)
    return None


def _not_found(name: str) -> ApiResponse:
    # The same answer for another owner's image, as the builds API does: whose it is, or that
    # it exists, does not leak.
    return _error(404, "not found", "name", f"there is no image {name!r}")


def _find(
    rt: Runtime, name: str, caller: Caller
) -> tuple[CatalogImage, Build | None] | ApiResponse:
    problem = _name_problem(name)
    if problem:
        return _error(400, "invalid request", "name", problem)
    try:
        image = image_catalog.find_image(rt.azure, name)
    except StepError as exc:
        return _unavailable(exc)
    if image is None:
        return _not_found(name)
    if not image.build_id:
        return _error(
            409,
            "conflict",
            "name",
            f"image {name!r} was not made by a labimage build; labimage manages only its own",
        )
    build = _build_of(rt, image)
    if not _may_manage(caller, build):
        return _not_found(name)
    return image, build


def get_image(rt: Runtime, name: str, caller: Caller) -> ApiResponse:
    found = _find(rt, name, caller)
    if isinstance(found, ApiResponse):
        return found
    image, build = found
    return ApiResponse(200, image_view(image, build))


def delete_image(rt: Runtime, name: str, caller: Caller) -> ApiResponse:
    """Start deleting a labimage-made image nobody uses any more: 202, or a refusal naming
    what stands in the way (the VM that uses it, the build still making it)."""
    found = _find(rt, name, caller)
    if isinstance(found, ApiResponse):
        return found
    image = found[0]
    if image.provisioning_state not in SETTLED:
        return _error(
            409,
            "conflict",
            "name",
            f"image {name!r} is {image.provisioning_state}: build {image.build_id} is still "
            "making it",
        )
    try:
        users = image_users(rt.azure, image.id)
        if users:
            return _error(
                409,
                "conflict",
                "name",
                f"image {name!r} is still used by {', '.join(users)}; delete that first",
            )
        image_catalog.begin_delete(rt.azure, image)
    except PermanentError as exc:  # Azure refused, e.g. a VM is being provisioned from it
        return _error(409, "conflict", "name", f"Azure refused to delete {name!r}: {exc}")
    except StepError as exc:
        return _unavailable(exc)
    logger.info("image %s (build %s) deleted by request", name, image.build_id)
    return ApiResponse(202, {"name": name, "id": image.id, "state": "Deleting"})
