"""Where a VM's disks come from: platform images, managed images, gallery image versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.arm import errors
from localcloud.arm.emulator import Emulator
from localcloud.arm.kinds.platform import ImageTraits, marketplace_traits
from localcloud.arm.store import Resource

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
    """The disks a new VM starts from; `os_path` None is an empty (platform) OS layer."""

    os_path: Path | None = None
    os_size_gb: int = 30
    data_disks: list[ImageDisk] = field(default_factory=list)
    traits: ImageTraits = field(default_factory=ImageTraits)


def image_internal(
    os_path: Path, os_size: int, data: list[ImageDisk], traits: ImageTraits
) -> dict[str, Any]:
    """How managed images and gallery versions record their frozen disks and what VMs made
    from them may be (generation, security type, disk controllers)."""
    return {
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
    if image_ref.get("publisher") and image_ref.get("offer") and image_ref.get("sku"):
        return ImageSource(traits=marketplace_traits(image_ref))
    raise errors.invalid_parameter(
        "The value of parameter imageReference is invalid.", "imageReference"
    )
