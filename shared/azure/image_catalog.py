"""The images labimage builds made: managed images and Compute Gallery versions in the build
resource group that carry the build tag. Anything without that tag is not labimage's and is
neither listed nor deleted.

A managed image is named by its Azure name; a gallery version by `<gallery>:<definition>:<version>`
(':' appears in none of the three Azure names, so one path segment names it in the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.azure.boundary import arm_call, get_or_none
from shared.azure.clients import AzureClients
from shared.azure.naming import BUILD_TAG

MANAGED = "managed-image"
GALLERY_VERSION = "gallery-version"
GALLERY_SEPARATOR = ":"


@dataclass(frozen=True)
class CatalogImage:
    """One labimage-made image as Azure shows it."""

    name: str
    kind: str  # MANAGED or GALLERY_VERSION
    id: str
    build_id: str
    tags: dict[str, str]
    size_gb: int | None
    created: datetime | None
    provisioning_state: str | None


def gallery_version_name(gallery: str, definition: str, version: str) -> str:
    return GALLERY_SEPARATOR.join((gallery, definition, version))


def split_gallery_name(name: str) -> tuple[str, str, str] | None:
    parts = name.split(GALLERY_SEPARATOR)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def _state(resource: Any) -> str | None:
    return getattr(resource, "provisioning_state", None)


def _created(resource: Any) -> datetime | None:
    system = getattr(resource, "system_data", None)
    created = getattr(system, "created_at", None) if system else None
    if created is None:
        publishing = getattr(resource, "publishing_profile", None)
        created = getattr(publishing, "published_date", None) if publishing else None
    return created if isinstance(created, datetime) else None


def _managed_size(image: Any) -> int | None:
    storage = getattr(image, "storage_profile", None)
    if storage is None or storage.os_disk is None:
        return None
    sizes = [storage.os_disk.disk_size_gb, *(d.disk_size_gb for d in storage.data_disks or [])]
    return sum(int(s or 0) for s in sizes)


def _version_size(version: Any) -> int | None:
    storage = getattr(version, "storage_profile", None)
    if storage is None:
        return None
    os_image = storage.os_disk_image
    sizes = [getattr(os_image, "size_in_gb", None) if os_image else None]
    sizes += [d.size_in_gb for d in storage.data_disk_images or []]
    return sum(int(s or 0) for s in sizes)


def _managed(image: Any) -> CatalogImage:
    tags = dict(image.tags or {})
    return CatalogImage(
        name=str(image.name),
        kind=MANAGED,
        id=str(image.id),
        build_id=tags.get(BUILD_TAG, ""),
        tags=tags,
        size_gb=_managed_size(image),
        created=_created(image),
        provisioning_state=_state(image),
    )


def _version(gallery: str, definition: str, version: Any) -> CatalogImage:
    tags = dict(version.tags or {})
    return CatalogImage(
        name=gallery_version_name(gallery, definition, str(version.name)),
        kind=GALLERY_VERSION,
        id=str(version.id),
        build_id=tags.get(BUILD_TAG, ""),
        tags=tags,
        size_gb=_version_size(version),
        created=_created(version),
        provisioning_state=_state(version),
    )


def list_images(azure: AzureClients) -> list[CatalogImage]:
    """Every labimage-made image in the build group, managed images first, then by name."""
    compute, group = azure.compute, azure.settings.resource_group
    found: list[CatalogImage] = []
    with arm_call("list images"):
        found += [_managed(i) for i in compute.images.list_by_resource_group(group)]
        for gallery in compute.galleries.list_by_resource_group(group):
            g = str(gallery.name)
            for definition in compute.gallery_images.list_by_gallery(group, g):
                d = str(definition.name)
                versions = compute.gallery_image_versions.list_by_gallery_image(group, g, d)
                found += [_version(g, d, v) for v in versions]
    labimage = [image for image in found if image.build_id]
    return sorted(labimage, key=lambda i: (i.kind != MANAGED, i.name))


def find_image(azure: AzureClients, name: str) -> CatalogImage | None:
    """The image called `name` (see the module docstring), tagged or not; None when absent."""
    compute, group = azure.compute, azure.settings.resource_group
    parts = split_gallery_name(name)
    if parts is None:
        image = get_or_none(f"read image {name}", lambda: compute.images.get(group, name))
        return _managed(image) if image is not None else None
    gallery, definition, version = parts
    found = get_or_none(
        f"read gallery image version {name}",
        lambda: compute.gallery_image_versions.get(group, gallery, definition, version),
    )
    return _version(gallery, definition, found) if found is not None else None


def begin_delete(azure: AzureClients, image: CatalogImage) -> None:
    """Start deleting `image`; Resource Manager finishes it in the background."""
    compute, group = azure.compute, azure.settings.resource_group
    with arm_call(f"delete image {image.name}"):
        parts = split_gallery_name(image.name)
        if image.kind == MANAGED or parts is None:
            compute.images.begin_delete(group, image.name)
        else:
            compute.gallery_image_versions.begin_delete(group, *parts)
