"""What Azure knows about VM sizes and images: hypervisor generation, security type, disk
controller; and how a VM PUT is checked against them, with Azure's refusals.

Sources (see ../shared/azure-rest/RULES.md sections 1.7 and 4):
- sizes: ACD `nvme-overview.md` ("D/Ev5 or Fv2 and older support SCSI ... Ebsv5, Da/Ea/Fav6 and
  newer typically support only the NVMe storage interface", Ebsv5 both); ACD `generation-2.md`
  (B, D, E, F families boot Gen1 and Gen2); redhat-developer/mapt#489 (v6 sizes cannot boot
  Gen1); ACD `trusted-launch.md` (Dv2 and Dv3 do not support Trusted Launch).
- images: SPEC `aliases.json` (Ubuntu 24.04 `server` is Gen2, `server-gen1` Gen1); ACD
  `trusted-launch-portal.md` (image security types); ACD `nvme-overview.md` ("If you use an
  unmarked image, a SCSI-based VM is created").
- defaults: ACD `enable-nvme-interface.md` (without `diskControllerType` "the platform will
  automatically choose the default controller based on the VM size configuration"); ACD
  `trusted-launch.md` (without `securityProfile`: Standard, or Trusted Launch where the
  platform defaults to it and image and size support it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from localcloud.arm import errors

SCSI = "SCSI"
NVME = "NVMe"
STANDARD = "Standard"
TRUSTED_LAUNCH = "TrustedLaunch"
TRUSTED_LAUNCH_SUPPORTED = "TrustedLaunchSupported"
# Image security types (gallery `features` SecurityType, ACD trusted-launch-portal.md).
IMAGE_SECURITY_TYPES = (
    STANDARD,
    TRUSTED_LAUNCH_SUPPORTED,
    TRUSTED_LAUNCH,
    "ConfidentialVMSupported",
    "ConfidentialVM",
    "TrustedLaunchAndConfidentialVmSupported",
)
VM_SECURITY_TYPES = (STANDARD, TRUSTED_LAUNCH, "ConfidentialVM")
# From this api-version on, a VM without Trusted Launch answers securityType Standard
# (Python SDK reference for SecurityTypes, RULES.md section 4).
STANDARD_SHOWN_FROM_API = "2025-11-01"


@dataclass(frozen=True)
class SizeTraits:
    generations: tuple[str, ...]
    controllers: tuple[str, ...]  # the first is the platform's default
    trusted_launch: bool
    premium_storage: bool = True  # takes Premium_LRS disks


@dataclass(frozen=True)
class ImageTraits:
    generation: str = "V1"
    security: str = STANDARD  # what VMs made from it may use (an image security type)
    controllers: tuple[str, ...] = (SCSI,)


# Sizes that differ from the rule by version suffix below.
_SIZE_EXCEPTIONS = {
    # Ebsv5 / Ebdsv5: SCSI and NVMe (nvme-overview.md)
    "ebsv5": SizeTraits(("V1", "V2"), (SCSI, NVME), True),
    "ebdsv5": SizeTraits(("V1", "V2"), (SCSI, NVME), True),
}
_SIZE_NAME = re.compile(r"^standard_([a-z]+)(\d+)([a-z-]*?)(?:_v(\d+))?$", re.IGNORECASE)

# (publisher, offer, sku), lower case.
MARKETPLACE_IMAGES = {
    ("canonical", "ubuntu-24_04-lts", "server"): ImageTraits(
        "V2", TRUSTED_LAUNCH_SUPPORTED, (SCSI, NVME)
    ),
    ("canonical", "ubuntu-24_04-lts", "server-gen1"): ImageTraits("V1", STANDARD, (SCSI,)),
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"): ImageTraits(
        "V2", TRUSTED_LAUNCH_SUPPORTED, (SCSI, NVME)
    ),
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"): ImageTraits(
        "V1", STANDARD, (SCSI,)
    ),
}


# The version `latest` stands for at deploy time, per (publisher, offer, sku), lower case.
LATEST_VERSIONS = {
    ("canonical", "ubuntu-24_04-lts", "server"): "24.04.202501010",
    ("canonical", "ubuntu-24_04-lts", "server-gen1"): "24.04.202501010",
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"): "22.04.202501010",
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"): "22.04.202501010",
}
UNKNOWN_IMAGE_LATEST = "1.0.0"


def exact_version(image_ref: dict[str, Any]) -> str:
    """imageReference.exactVersion of a VM made from a platform image: "the version of platform
    image or marketplace image used to create the virtual machine. This readonly field differs
    from 'version', only if the value specified in 'version' field is 'latest'" (the
    ImageReference model of the Compute REST API, 2025-04-01, as azure-mgmt-compute documents
    it). A version left out means latest, as in the marketplace."""
    version = str(image_ref.get("version") or "latest")
    if version.lower() != "latest":
        return version
    key = tuple(str(image_ref.get(k, "")).lower() for k in ("publisher", "offer", "sku"))
    return LATEST_VERSIONS.get(key, UNKNOWN_IMAGE_LATEST)  # type: ignore[arg-type]


def size_traits(size: str) -> SizeTraits:
    """v6 and newer: NVMe only and Gen2 only; v4/v5 and B: SCSI, both generations, Trusted
    Launch; v2/v3 and anything unknown: SCSI, both generations, no Trusted Launch."""
    match = _SIZE_NAME.match(size.strip())
    if not match:
        return SizeTraits(("V1", "V2"), (SCSI,), False)
    family, _, features, version = match.groups()
    key = f"{family}{features}v{version}".lower() if version else ""
    if key in _SIZE_EXCEPTIONS:
        return _SIZE_EXCEPTIONS[key]
    # "s: Premium Storage capable" (ACD vm-naming-conventions.md); DS and GS are the older
    # series' premium names.
    premium = "s" in features.lower() or family.lower() in ("ds", "gs")
    number = int(version) if version else None
    if number is not None and number >= 6:
        return SizeTraits(("V2",), (NVME,), True, premium)
    trusted = number in (4, 5) or (number is None and family.lower() == "b")
    return SizeTraits(("V1", "V2"), (SCSI,), trusted, premium)


PREMIUM_TYPES = ("premium_lrs", "premium_zrs", "premiumv2_lrs")


def check_storage_type(size_name: str, storage_type: str) -> None:
    """Premium disks need a premium-capable size; Azure's refusal as users quote it
    (MicrosoftLearning/20533-ImplementingMicrosoftAzureInfrastructureSolutions#345)."""
    if storage_type.lower() in PREMIUM_TYPES and not size_traits(size_name).premium_storage:
        raise errors.invalid_parameter(
            "Requested operation cannot be performed because storage account type "
            f"'{storage_type}' is not supported for VM size '{size_name}'.",
            "storageAccountType",
        )


def marketplace_traits(image_ref: dict[str, Any]) -> ImageTraits:
    key = tuple(str(image_ref.get(k, "")).lower() for k in ("publisher", "offer", "sku"))
    return MARKETPLACE_IMAGES.get(key, ImageTraits())  # type: ignore[arg-type]


def parse_controllers(value: Any) -> tuple[str, ...]:
    """'SCSI, NVMe' (the DiskControllerTypes feature and disk capability) as a tuple."""
    names = {n.strip().lower(): n for n in (SCSI, NVME)}
    found = [names[p.strip().lower()] for p in str(value or "").split(",") if p.strip()]
    if not found or any(p.strip().lower() not in names for p in str(value).split(",")):
        return (SCSI,)
    return tuple(dict.fromkeys(found))


def features_of(props: dict[str, Any]) -> dict[str, str]:
    """A gallery image definition's `features` as {lower-case name: value}."""
    return {
        str(f.get("name", "")).lower(): str(f.get("value", ""))
        for f in props.get("features") or []
        if isinstance(f, dict)
    }


@dataclass(frozen=True)
class VmPlatform:
    generation: str
    security_type: str
    controller: str
    controllers: tuple[str, ...]  # what the VM's OS disk supports (from the image)
    security_profile: dict[str, Any] | None  # as the VM model answers it


def decide(
    props: dict[str, Any], image: ImageTraits, default_security: str, api_version: str
) -> VmPlatform:
    """The generation, security type and disk controller of a new VM, or Azure's refusal."""
    size = str((props.get("hardwareProfile") or {}).get("vmSize") or "Standard_D2s_v3")
    traits = size_traits(size)
    if image.generation not in traits.generations:
        raise errors.ArmError(
            400,
            "BadRequest",
            f"The selected VM size '{size}' cannot boot Hypervisor Generation "
            f"'{image.generation[1:]}'. If this was a Create operation please check that the "
            "Hypervisor Generation of the Image matches the Hypervisor Generation of the selected "
            "VM Size. If this was an Update operation please select a Hypervisor Generation "
            f"'{image.generation[1:]}' VM Size. For more information, see "
            "https://aka.ms/azuregen2vm",
        )
    security, profile = _security(props, image, size, default_security, api_version)
    controller = _controller(props, image, traits, size)
    return VmPlatform(image.generation, security, controller, image.controllers, profile)


def _security(
    props: dict[str, Any],
    image: ImageTraits,
    size_name: str,
    default_security: str,
    api_version: str,
) -> tuple[str, dict[str, Any] | None]:
    size = size_traits(size_name)
    profile = dict(props.get("securityProfile") or {})
    asked = profile.get("securityType")
    image_allows_tl = image.generation == "V2" and image.security in (
        TRUSTED_LAUNCH_SUPPORTED,
        TRUSTED_LAUNCH,
        "TrustedLaunchAndConfidentialVmSupported",
    )
    if asked is None:
        # Trusted Launch by default only where image and size support it (trusted-launch.md).
        tl = default_security == TRUSTED_LAUNCH and image_allows_tl and size.trusted_launch
        chosen = TRUSTED_LAUNCH if tl else STANDARD
    else:
        chosen = next((t for t in VM_SECURITY_TYPES if t.lower() == str(asked).lower()), "")
        if not chosen:
            raise errors.invalid_parameter(
                f"The value '{asked}' of parameter 'securityProfile.securityType' is invalid.",
                "securityProfile.securityType",
            )
        if chosen == "ConfidentialVM":
            raise errors.invalid_parameter(
                "localcloud does not emulate Confidential VMs.", "securityProfile.securityType"
            )
    if chosen == STANDARD and image.security == TRUSTED_LAUNCH:
        raise errors.ArmError(  # kubermatic/machine-controller#2013
            400,
            "BadRequest",
            "The provided gallery image only supports creation of VMs and VM Scale Sets with "
            "'TrustedLaunch' security type.",
        )
    if chosen == TRUSTED_LAUNCH and not image_allows_tl:
        raise errors.ArmError(  # Azure/azure-cli#27975
            400,
            "BadRequest",
            "Use of TrustedLaunch setting is not supported for the provided image. Please select "
            "Trusted Launch Supported Gen2 OS Image. For more information, see "
            "https://aka.ms/TrustedLaunch-FAQ.",
        )
    if chosen == TRUSTED_LAUNCH and not size.trusted_launch:
        raise errors.ArmError(  # Azure/azure-cli#28005 (the API's message from November 2023)
            400,
            "BadRequest",
            f"The VM size '{size_name}' is not supported for creation of VMs and Virtual Machine "
            "Scale Set with 'TrustedLaunch' security type. For more information, see "
            "https://aka.ms/TrustedLaunch-FAQ",
        )
    if chosen == TRUSTED_LAUNCH:
        uefi = dict(profile.get("uefiSettings") or {})
        uefi.setdefault("secureBootEnabled", True)
        uefi.setdefault("vTpmEnabled", True)
        return chosen, dict(profile, securityType=TRUSTED_LAUNCH, uefiSettings=uefi)
    if asked is not None or api_version >= STANDARD_SHOWN_FROM_API:
        return chosen, dict(profile, securityType=STANDARD)
    return chosen, profile or None


def _controller(props: dict[str, Any], image: ImageTraits, size: SizeTraits, name: str) -> str:
    asked = (props.get("storageProfile") or {}).get("diskControllerType")
    target = "storageProfile.diskControllerType"
    if asked is None:
        usable = [c for c in size.controllers if c in image.controllers]
        if not usable:
            raise errors.invalid_parameter(  # openshift/installer#9232
                f"The VM size '{name}' cannot boot with OS image or disk. Please check that disk "
                "controller types supported by the OS image or disk is one of the supported disk "
                f"controller types for the VM size '{name}'.",
                target,
            )
        return usable[0]
    chosen = next((c for c in (SCSI, NVME) if c.lower() == str(asked).lower()), str(asked))
    if chosen not in size.controllers:
        raise errors.invalid_parameter(  # Azure/FederalAVD#20 (the SCSI case is inferred)
            f"The VM size '{name}' cannot boot with DiskControllerType '{chosen}'. Please check "
            "that the disk controller type provided is one of the supported disk controller "
            f"types for the VM size '{name}'. Please query sku api at "
            "https://aka.ms/azure-compute-skus  to determine supported disk controller types for "
            "the VM size.",
            target,
        )
    if chosen not in image.controllers:
        raise errors.invalid_parameter(  # ACD nvme-overview.md
            "The selected image is not supported for NVMe. See supported VM images."
            if chosen == NVME
            else f"The VM size '{name}' cannot boot with OS image or disk.",
            target,
        )
    return chosen
