"""Where a VM's disks come from: platform images, managed images, gallery image versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.arm import errors
from localcloud.arm.emulator import Emulator
from localcloud.arm.kinds.platform import ImageTraits, marketplace_traits
from localcloud.arm.store import Resource
from localcloud.sandbox.api import DEFAULT_BASE_IMAGE
from localcloud.sandbox.base_images import offered

IMAGE = "Microsoft.Compute/images"
GALLERY = "Microsoft.Compute/galleries"
GALLERY_IMAGE = "Microsoft.Compute/galleries/images"
GALLERY_VERSION = "Microsoft.Compute/galleries/images/versions"


@dataclass
class ImageDisk:
    lun: int
    path: Path | None
    size_gb: int


@dataclass
class ImageSource:
    """The disks a new VM starts from; `os_path` None is an empty (platform) OS layer.
    `base` names the marketplace image whose tree lies below every OS layer made from it."""

    os_path: Path | None = None
    os_size_gb: int = 30
    data_disks: list[ImageDisk] = field(default_factory=list)
    traits: ImageTraits = field(default_factory=ImageTraits)
    base: str = DEFAULT_BASE_IMAGE


def image_internal(
    os_path: Path,
    os_size: int,
    data: list[ImageDisk],
    traits: ImageTraits,
    base: str = DEFAULT_BASE_IMAGE,
) -> dict[str, Any]:
    """How managed images and gallery versions record their frozen disks, the base image below
    them, and what VMs made from them may be (generation, security type, disk controllers)."""
    return {
        "base": base,
        "os_path": str(os_path),
        "os_size_gb": os_size,
        "data": [{"lun": d.lun, "path": str(d.path), "size_gb": d.size_gb} for d in data],
        "generation": traits.generation,
        "security": traits.security,
        "controllers": list(traits.controllers),
    }


def traits_of(internal: dict[str, Any]) -> ImageTraits:
    # State written before images recorded these was made from the Gen2 Ubuntu image.
    return ImageTraits(
        str(internal.get("generation", "V2")),
        str(internal.get("security", "Standard")),
        tuple(internal.get("controllers") or ("SCSI",)),
    )


def source_of(resource: Resource) -> ImageSource:
    internal = resource.internal
    return ImageSource(
        Path(internal["os_path"]) if internal.get("os_path") else None,
        int(internal.get("os_size_gb", 30)),
        [
            ImageDisk(int(d["lun"]), Path(d["path"]) if d.get("path") else None, int(d["size_gb"]))
            for d in internal.get("data", [])
        ],
        traits_of(internal),
        str(internal.get("base") or DEFAULT_BASE_IMAGE),
    )


def _version_key(resource: Resource) -> tuple[int, ...]:
    return tuple(int(p) for p in resource.name.split("."))


def resolve_image(emu: Emulator, image_ref: dict[str, Any], location: str) -> ImageSource:
    """Find what `storageProfile.imageReference` names, with ARM's errors when it is missing."""
    image_id = image_ref.get("id")
    if image_id:
        resource = emu.store.get(image_id)
        if resource is not None and resource.type.lower() == GALLERY_IMAGE.lower():
            versions = [
                v
                for v in emu.store.of_type(GALLERY_VERSION, resource.id + "/")
                if v.props.get("provisioningState") == "Succeeded"
                and not v.props.get("publishingProfile", {}).get("excludeFromLatest")
            ]
            resource = max(versions, key=_version_key) if versions else None
        if (
            resource is None
            or resource.type.lower() not in (IMAGE.lower(), GALLERY_VERSION.lower())
            or resource.props.get("provisioningState") != "Succeeded"
        ):
            raise errors.ArmError(
                404, "NotFound", f"The Image '{image_id}' cannot be found in '{location}' region."
            )
        return source_of(resource)
    publisher, offer, sku = (str(image_ref.get(k) or "") for k in ("publisher", "offer", "sku"))
    if publisher and offer and sku:
        base = offered(publisher, offer, sku)
        if base is None:
            # Azure's answer for a marketplace image it does not have (seen in the wild:
            # clong/DetectionLab#729, hashicorp/packer-plugin-azure#53).
            version = image_ref.get("version") or "latest"
            raise errors.ArmError(
                404,
                "PlatformImageNotFound",
                f"The platform image '{publisher}:{offer}:{sku}:{version}' is not available. "
                "Verify that all fields in the storage profile are correct. For more details "
                "about storage profile information, please refer to "
                "https://aka.ms/storageprofile",
                target="imageReference",
            )
        return ImageSource(traits=marketplace_traits(image_ref), base=base.urn)
    raise errors.invalid_parameter(
        "The value of parameter imageReference is invalid.", "imageReference"
    )
