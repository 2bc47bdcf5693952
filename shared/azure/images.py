"""Managed images and Compute Gallery versions captured from a generalized VM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from azure.mgmt.compute.models import Gallery, GalleryImage, GalleryImageVersion, Image

from shared.azure.boundary import arm_call, get_or_none
from shared.azure.clients import AzureClients
from shared.azure.lro import ensure
from shared.azure.naming import BUILD_TAG
from shared.errors import PermanentError

# On a gallery image definition (which outlives builds): the build that created it.
CREATED_BY_TAG = "labimage-created-by"


def begin_create_image(
    azure: AzureClients,
    image_name: str,
    source_vm_id: str,
    tags: dict[str, str],
    generation: str,
) -> LROPoller[Image]:
    """Start capturing a managed image; `generation` is the source VM's (Azure refuses another)."""
    s = azure.settings
    body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "sourceVirtualMachine": {"id": source_vm_id},
            "hyperVGeneration": generation,
        },
    }
    with arm_call(f"create image {image_name}"):
        return azure.compute.images.begin_create_or_update(
            s.resource_group, image_name, Image(body)
        )


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
    source_id: str,
    tags: dict[str, str],
    from_vm: bool = False,
) -> LROPoller[Any]:
    """Start a gallery image version from a managed image, or (`from_vm`) straight from a
    generalized VM, as a Trusted Launch VM must be captured; its operation's poller."""
    s = azure.settings
    source = {"virtualMachineId": source_id} if from_vm else {"id": source_id}
    body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "storageProfile": {"source": source},
            "publishingProfile": {
                "targetRegions": [{"name": s.location, "regionalReplicaCount": 1}]
            },
        },
    }
    with arm_call(f"create gallery image version {gallery}/{definition}/{version}"):
        return azure.compute.gallery_image_versions.begin_create_or_update(
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


def begin_delete_image(azure: AzureClients, image_name: str) -> str | None:
    """Start deleting a managed image: None when it started, else why Azure refuses for now.

    Azure refuses (409 OperationNotAllowed) while a VM is still being provisioned from the
    image and allows it once that VM is (AD common-deployment-errors.md, RULES.md 1.5): a
    reason to try again later, not to give up."""
    try:
        with arm_call(f"delete image {image_name}"):
            azure.compute.images.begin_delete(azure.settings.resource_group, image_name)
    except PermanentError as exc:
        if _refused_while_in_use(exc.__cause__):
            return str(exc)
        raise
    return None


def _refused_while_in_use(cause: BaseException | None) -> bool:
    if not isinstance(cause, HttpResponseError) or cause.status_code != 409:
        return False
    code = getattr(cause.error, "code", None) if cause.error else None
    return code in ("OperationNotAllowed", "OperationNotAllowedOnVMImageAsVMsBeingProvisioned")


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


def gallery_definition_creator(
    azure: AzureClients, gallery: str, definition: str
) -> tuple[bool, str | None]:
    """(exists, the build that created it: its `labimage-created-by` tag) of an image
    definition in the build group."""
    s = azure.settings
    found = get_or_none(
        f"read gallery image {gallery}/{definition}",
        lambda: azure.compute.gallery_images.get(s.resource_group, gallery, definition),
    )
    if found is None:
        return False, None
    return True, (found.tags or {}).get(CREATED_BY_TAG)


@dataclass(frozen=True)
class DefinitionNeeds:
    """What the image definition must say for this build's version and the VMs made from it."""

    generation: str  # the source VM's hyperVGeneration
    security_type: str  # TrustedLaunch or Standard
    nvme: bool  # the VM ran on NVMe, so VMs from the image must be allowed to

    def features(self) -> list[dict[str, str]]:
        # ACD trusted-launch-portal.md: a Trusted Launch VM capture needs SecurityType
        # TrustedLaunch; without DiskControllerTypes an image is SCSI only (nvme-overview.md).
        features = []
        if self.security_type == "TrustedLaunch":
            features.append({"name": "SecurityType", "value": "TrustedLaunch"})
        if self.nvme:
            features.append({"name": "DiskControllerTypes", "value": "SCSI, NVMe"})
        return features

    def problems(self, existing: GalleryImage) -> list[str]:
        """Why an existing definition cannot take this build's version."""
        found = []
        generation = getattr(existing.hyper_v_generation, "value", existing.hyper_v_generation)
        generation = str(generation or "V1")
        if generation.upper() != self.generation.upper():
            found.append(f"its hyperVGeneration is {generation}, the build VM's {self.generation}")
        features = {
            str(f.name).lower(): str(f.value or "") for f in existing.features or [] if f.name
        }
        security = features.get("securitytype", "Standard")
        if self.security_type == "TrustedLaunch" and security.lower() != "trustedlaunch":
            found.append(f"its SecurityType is {security}; a Trusted Launch VM needs TrustedLaunch")
        if self.security_type != "TrustedLaunch" and security.lower() == "trustedlaunch":
            found.append("its SecurityType TrustedLaunch makes Trusted Launch VMs only")
        controllers = features.get("diskcontrollertypes", "SCSI").lower()
        if self.nvme and "nvme" not in controllers:
            found.append("it does not list NVMe in DiskControllerTypes, which this VM size needs")
        return found


def ensure_gallery_definition(
    azure: AzureClients,
    gallery: str,
    definition: str,
    identifier: dict[str, str],
    tags: dict[str, str],
    needs: DefinitionNeeds,
) -> bool:
    """Create the gallery and the image definition when missing; existing ones are left as they
    are, but must fit `needs` (PermanentError naming what does not). They outlive builds, so
    they do not carry a build tag and cleanup never removes them. False while Resource Manager
    is still creating either (call again later)."""
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
            "hyperVGeneration": needs.generation,
            "identifier": identifier,
            "features": needs.features(),
        },
    }
    made_definition = ensure(
        f"gallery image definition {gallery}/{definition}",
        lambda: azure.compute.gallery_images.get(s.resource_group, gallery, definition),
        lambda: azure.compute.gallery_images.begin_create_or_update(
            s.resource_group, gallery, definition, GalleryImage(body)
        ),
    )
    if made_definition is None:
        return False
    problems = needs.problems(made_definition)
    if problems:
        raise PermanentError(
            f"the existing image definition {gallery}/{definition} cannot take this build's "
            f"image: {'; '.join(problems)}. Choose another image.gallery.definition"
        )
    return True
