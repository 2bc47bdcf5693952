"""From the image a request names to the image id a VM starts from, with what the VM needs to
match it (security type; the build's size and user as defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.api.caller import Caller
from shared.azure.boundary import get_or_none
from shared.azure.clients import AzureClients
from shared.azure.naming import BUILD_TAG
from shared.state.record import Build
from shared.state.store import BuildNotFound, BuildStore
from shared.workstations.request import ImageChoice

DEFAULT_SIZE = "Standard_D2s_v5"
DEFAULT_USER = "azureuser"


class ImageNotUsable(LookupError):
    """The named image cannot be used; `field` says which part of the request to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImageDataDisk:
    """The data disk a labimage build captured into the image, as its request made it."""

    lun: int
    size_gb: int
    mount_point: str
    filesystem: str


@dataclass(frozen=True)
class ResolvedImage:
    image_id: str
    source: str
    security_type: str
    size: str
    admin_username: str
    data_disk: ImageDataDisk | None = None  # None: no labimage build is known to have made it


def resolve_image(
    choice: ImageChoice, store: BuildStore, azure: AzureClients, caller: Caller
) -> ResolvedImage:
    if choice.build:
        return _from_build(choice.build, store, caller)
    if choice.image_id:
        group, names = _group_and_names(choice.image_id)
        image = get_or_none(
            f"read image {choice.image_id}", lambda: azure.compute.images.get(group, names[0])
        )
        maker = _maker(image.tags if image else None, store)
        if image is None or not _usable_by(caller, maker):
            raise ImageNotUsable("image.image_id", "there is no such managed image")
        # A managed image cannot come from a Trusted Launch VM (RULES.md, Trusted Launch).
        return ResolvedImage(
            choice.image_id,
            "image_id",
            "Standard",
            DEFAULT_SIZE,
            DEFAULT_USER,
            _data_disk(maker),
        )
    version_id = choice.gallery_image_version_id or ""
    group, names = _group_and_names(version_id)
    gallery, definition, version = names
    found = get_or_none(
        f"read gallery image version {version_id}",
        lambda: azure.compute.gallery_image_versions.get(group, gallery, definition, version),
    )
    maker = _maker(found.tags if found else None, store)
    if found is None or not _usable_by(caller, maker):
        raise ImageNotUsable(
            "image.gallery_image_version_id", "there is no such gallery image version"
        )
    definition_found = get_or_none(
        f"read gallery image {gallery}/{definition}",
        lambda: azure.compute.gallery_images.get(group, gallery, definition),
    )
    listed = (definition_found.features if definition_found else None) or []
    features = {str(f.name).lower(): str(f.value) for f in listed}
    security = features.get("securitytype", "Standard")
    security = "TrustedLaunch" if security.lower() == "trustedlaunch" else "Standard"
    return ResolvedImage(
        version_id,
        "gallery_image_version_id",
        security,
        DEFAULT_SIZE,
        DEFAULT_USER,
        _data_disk(maker),
    )


def _maker(tags: dict[str, str] | None, store: BuildStore) -> Build | None:
    """The build that made an image (its `labimage-build` tag), when it is on record."""
    made_by = (tags or {}).get(BUILD_TAG)
    if not made_by:
        return None
    try:
        return store.get(made_by).build
    except BuildNotFound:
        return None


def _usable_by(caller: Caller, maker: Build | None) -> bool:
    """An administrator may start from any image; anyone else only from one a build of
    theirs made. Another's image is answered as unknown."""
    if caller.is_admin:
        return True
    return maker is not None and caller.owns(maker.owner_id)


def _data_disk(maker: Build | None) -> ImageDataDisk | None:
    if maker is None:
        return None
    disk = maker.request.get("data_disk") or {}
    return ImageDataDisk(
        lun=int(disk.get("lun", 0)),
        size_gb=int(disk.get("size_gb", 256)),
        mount_point=str(disk.get("mount_point", "/datadrive")),
        filesystem=str(disk.get("filesystem", "xfs")),
    )


def _from_build(name: str, store: BuildStore, caller: Caller) -> ResolvedImage:
    """The newest succeeded build of request `name` the caller may see that left an image."""
    latest: Build | None = None
    token: str | None = None
    while True:
        page = store.list(
            state="succeeded",
            owner_id=None if caller.is_admin else caller.object_id,
            page_size=100,
            page_token=token,
        )
        for build in page.builds:
            image = build.outputs.get("gallery_image_version_id") or build.outputs.get("image_id")
            if build.request.get("name") != name or not image:
                continue
            if latest is None or build.created_at > latest.created_at:
                latest = build
        token = page.next_token
        if not token:
            break
    if latest is None:
        raise ImageNotUsable("image.build", f"no succeeded build of {name!r} with an image")
    outputs = latest.outputs
    vm = latest.request.get("vm") or {}
    security = (outputs.get("security") or {}).get("type") or "Standard"
    return ResolvedImage(
        image_id=outputs.get("gallery_image_version_id") or outputs["image_id"],
        source=f"build {name} ({latest.id})",
        security_type=str(security),
        size=str(vm.get("size") or DEFAULT_SIZE),
        admin_username=str(vm.get("admin_username") or DEFAULT_USER),
        data_disk=_data_disk(latest),
    )


def _group_and_names(resource_id: str) -> tuple[str, list[str]]:
    segments = resource_id.strip("/").split("/")
    return segments[3], segments[7::2]
