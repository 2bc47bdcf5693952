"""Managed images and Compute Gallery versions captured from a generalized VM."""

from __future__ import annotations

from typing import Any

from azure.mgmt.compute.models import Gallery, GalleryImage, GalleryImageVersion, Image

from shared.azure.boundary import arm_call, get_or_none
from shared.azure.clients import AzureClients
from shared.azure.lro import ensure
from shared.azure.naming import BUILD_TAG


def begin_create_image(
    azure: AzureClients, image_name: str, source_vm_id: str, tags: dict[str, str]
) -> None:
    s = azure.settings
    body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {"sourceVirtualMachine": {"id": source_vm_id}, "hyperVGeneration": "V2"},
    }
    with arm_call(f"create image {image_name}"):
        azure.compute.images.begin_create_or_update(s.resource_group, image_name, Image(body))


def image_state(azure: AzureClients, image_name: str) -> tuple[str | None, str | None]:
    """(provisioning state, id) of a managed image, or (None, None) when it does not exist."""
    s = azure.settings
    image = get_or_none(
        f"read image {image_name}", lambda: azure.compute.images.get(s.resource_group, image_name)
    )
    if image is None:
        return None, None
    state = image.properties.provisioning_state if image.properties else None
    return state, image.id


def begin_create_gallery_version(
    azure: AzureClients,
    gallery: str,
    definition: str,
    version: str,
    image_id: str,
    tags: dict[str, str],
) -> None:
    s = azure.settings
    body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "storageProfile": {"source": {"id": image_id}},
            "publishingProfile": {
                "targetRegions": [{"name": s.location, "regionalReplicaCount": 1}]
            },
        },
    }
    with arm_call(f"create gallery image version {gallery}/{definition}/{version}"):
        azure.compute.gallery_image_versions.begin_create_or_update(
            s.resource_group,
            gallery,
            definition,
            version,
            GalleryImageVersion(body),
        )


def gallery_version_state(
    azure: AzureClients, gallery: str, definition: str, version: str
) -> tuple[str | None, str | None]:
    s = azure.settings
    found = get_or_none(
        f"read gallery image version {gallery}/{definition}/{version}",
        lambda: azure.compute.gallery_image_versions.get(
            s.resource_group, gallery, definition, version
        ),
    )
    if found is None:
        return None, None
    state = found.properties.provisioning_state if found.properties else None
    return state, found.id


def begin_delete_image(azure: AzureClients, image_name: str) -> None:
    with arm_call(f"delete image {image_name}"):
        azure.compute.images.begin_delete(azure.settings.resource_group, image_name)


def image_build_tag(azure: AzureClients, image_name: str) -> tuple[bool, str | None]:
    """(exists, the labimage-build tag on it) of a managed image in the build group."""
    s = azure.settings
    image = get_or_none(
        f"read image {image_name}", lambda: azure.compute.images.get(s.resource_group, image_name)
    )
    if image is None:
        return False, None
    return True, (image.tags or {}).get(BUILD_TAG)


def gallery_version_build_tag(
    azure: AzureClients, gallery: str, definition: str, version: str
) -> tuple[bool, str | None]:
    s = azure.settings
    found = get_or_none(
        f"read gallery image version {gallery}/{definition}/{version}",
        lambda: azure.compute.gallery_image_versions.get(
            s.resource_group, gallery, definition, version
        ),
    )
    if found is None:
        return False, None
    return True, (found.tags or {}).get(BUILD_TAG)


def ensure_gallery_definition(
    azure: AzureClients,
    gallery: str,
    definition: str,
    identifier: dict[str, str],
    tags: dict[str, str],
) -> bool:
    """Create the gallery and the image definition when missing; existing ones are left as they
    are. They outlive builds, so they do not carry a build tag and cleanup never removes them.
    False while Resource Manager is still creating either (call again later)."""
    s = azure.settings
    body: dict[str, Any] = {"location": s.location, "tags": tags, "properties": {}}
    made = ensure(
        f"gallery {gallery}",
        lambda: azure.compute.galleries.get(s.resource_group, gallery),
        lambda: azure.compute.galleries.begin_create_or_update(
            s.resource_group, gallery, Gallery(body)
        ),
    )
    if made is None:
        return False
    body = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "identifier": identifier,
        },
    }
    made_definition = ensure(
        f"gallery image definition {gallery}/{definition}",
        lambda: azure.compute.gallery_images.get(s.resource_group, gallery, definition),
        lambda: azure.compute.gallery_images.begin_create_or_update(
            s.resource_group, gallery, definition, GalleryImage(body)
        ),
    )
    return made_definition is not None
