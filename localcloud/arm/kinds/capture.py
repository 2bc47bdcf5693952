"""Managed images and Compute Gallery resources: capturing a VM's disks into `<state>/images`."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.arm import errors, naming
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import ResourceRef
from localcloud.arm.kinds.base import Kind, copy_json
from localcloud.arm.kinds.disks import DISK, disk_path
from localcloud.arm.kinds.images import (
    GALLERY,
    GALLERY_IMAGE,
    GALLERY_VERSION,
    IMAGE,
    ImageDisk,
    image_internal,
    source_of,
    traits_of,
)
from localcloud.arm.kinds.platform import (
    IMAGE_SECURITY_TYPES,
    SCSI,
    STANDARD,
    TRUSTED_LAUNCH,
    TRUSTED_LAUNCH_SUPPORTED,
    ImageTraits,
    features_of,
    parse_controllers,
)
from localcloud.arm.kinds.vms import VM, current_power
from localcloud.arm.operations import now_iso
from localcloud.arm.store import Resource
from localcloud.sandbox.api import DEFAULT_BASE_IMAGE


def _source_vm(emu: Emulator, vm_id: str, need_generalized: bool) -> Resource:
    vm = emu.find(vm_id, VM)
    if vm is None:
        raise errors.ArmError(
            404,
            "NotFound",
            f"Source Virtual Machine '{vm_id}' specified in the request does not exist in this "
            "Azure location.",
        )
    power = current_power(emu, vm)
    if need_generalized and not vm.internal.get("generalized"):
        raise errors.operation_not_allowed(
            f"The operation requires the Virtual Machine '{vm.name}' to be Generalized."
        )
    if power not in ("stopped", "deallocated"):
        raise errors.operation_not_allowed(
            f"The Virtual Machine '{vm.name}' must be stopped or deallocated to be captured; "
            f"it is {power}."
        )
    return vm


def _vm_disks(emu: Emulator, vm: Resource) -> tuple[Resource, list[tuple[int, Resource]]]:
    storage = vm.props["storageProfile"]
    os_disk = emu.find(storage["osDisk"]["managedDisk"]["id"], DISK)
    if os_disk is None:
        raise errors.ArmError(404, "NotFound", f"The OS disk of VM '{vm.name}' is gone.")
    data = []
    for entry in storage.get("dataDisks", []):
        disk = emu.find(entry["managedDisk"]["id"], DISK)
        if disk is not None:
            data.append((int(entry["lun"]), disk))
    return os_disk, data


def _plan_copies(
    emu: Emulator, vm: Resource | None, image: Resource | None, folder: Path, traits: ImageTraits
) -> tuple[dict[str, Any], list[tuple[str, Path, Path]]]:
    """The internal record of the frozen disks and the copies (kind, source, dest) to make."""
    copies: list[tuple[str, Path, Path]] = []
    data: list[ImageDisk] = []
    records_only = False
    base = DEFAULT_BASE_IMAGE
    if vm is not None:
        base = str(vm.internal.get("os_base") or DEFAULT_BASE_IMAGE)
        records_only = bool(vm.internal.get("records_only"))
        os_disk, disks = _vm_disks(emu, vm)
        os_size = int(os_disk.props["diskSizeGB"])
        os_source = disk_path(os_disk)
        for lun, disk in disks:
            data.append(ImageDisk(lun, folder / f"lun{lun}.img", int(disk.props["diskSizeGB"])))
            src = disk_path(disk)
            if src is not None:
                copies.append(("data", src, folder / f"lun{lun}.img"))
    else:
        assert image is not None
        source = source_of(image)
        base = source.base
        records_only = source.os_path is None
        os_size = source.os_size_gb
        os_source = source.os_path
        for frozen in source.data_disks:
            dest = folder / f"lun{frozen.lun}.img"
            data.append(ImageDisk(frozen.lun, dest, frozen.size_gb))
            if frozen.path is not None:
                copies.append(("data", frozen.path, dest))
    if os_source is not None and not records_only:
        copies.insert(0, ("os", os_source, folder / "os"))
    internal = image_internal(folder / "os", os_size, data, traits, base)
    if records_only:
        internal["os_path"] = None
        for entry in internal["data"]:
            entry["path"] = None
        copies = []
    return internal, copies


async def _copy_all(
    emu: Emulator, lock_id: str | None, copies: list[tuple[str, Path, Path]]
) -> None:
    async def run() -> None:
        for kind, src, dest in copies:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if kind == "os":
                await emu.blocking(emu.runner.copy_os_disk, src, dest)
            else:
                await emu.blocking(emu.runner.copy_data_disk, src, dest)

    if lock_id:
        async with emu.lock(lock_id):
            await run()
    else:
        await run()


async def _delete_frozen(emu: Emulator, resource: Resource) -> None:
    internal = resource.internal
    paths = [internal.get("os_path"), *(d.get("path") for d in internal.get("data", []))]
    for path in paths:
        if path:
            await emu.blocking(emu.runner.delete_disk, Path(path))
    folder = internal.get("folder")
    if folder and Path(folder).is_dir():
        with contextlib.suppress(OSError):  # not empty: leave it for a person to see
            Path(folder).rmdir()


def _storage_profile_disks(internal: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    return int(internal["os_size_gb"]), [
        {"lun": d["lun"], "sizeInGB": d["size_gb"]} for d in internal["data"]
    ]


class ImageKind(Kind):
    type_name = IMAGE
    name_rule = naming.COMPUTE

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        if existing is not None:
            existing.body["tags"] = result["tags"]
            emu.store.touch()
            return emu.put_response(request, ref, existing, False, None, None, "Updating")
        props = copy_json(body.get("properties") or {})
        vm_id = (props.get("sourceVirtualMachine") or {}).get("id")
        if not vm_id:
            raise errors.invalid_parameter(
                "localcloud creates images from a VM only: properties.sourceVirtualMachine.id "
                "is required.",
                "sourceVirtualMachine",
            )
        vm = _source_vm(emu, vm_id, need_generalized=True)
        if vm.internal.get("security_type") == TRUSTED_LAUNCH:
            # ACD trusted-launch.md: Managed Image is unsupported with Trusted Launch;
            # message from hashicorp/packer#13189 (RULES.md 1.1).
            raise errors.operation_not_allowed(
                "Creation of managed images are not supported for virtual machine with "
                "TrustedLaunch security type."
            )
        generation = _generation_of(vm)
        asked = props.get("hyperVGeneration")
        if asked and str(asked).upper() != generation:
            raise _generation_conflict(vm.id, generation, str(asked), "image")
        props["hyperVGeneration"] = generation
        # A managed image has no DiskControllerTypes (ImageProperties, image.json 2025-04-01),
        # and an unmarked image makes SCSI VMs only (ACD nvme-overview.md): whatever its
        # source ran on, NVMe-only sizes cannot boot from it.
        traits = ImageTraits(generation, STANDARD, (SCSI,))
        folder = emu.state_dir / "images" / f"image-{uuid.uuid4().hex[:12]}"
        internal, copies = _plan_copies(emu, vm, None, folder, traits)
        internal["folder"] = str(folder)
        os_disk, disks = _vm_disks(emu, vm)
        props["sourceVirtualMachine"] = {"id": vm.id}
        props["storageProfile"] = {
            "osDisk": {
                "osType": "Linux",
                "osState": "Generalized",
                "diskSizeGB": int(os_disk.props["diskSizeGB"]),
                "managedDisk": {"id": os_disk.id},
                "caching": "ReadWrite",
                "storageAccountType": os_disk.body["sku"]["name"],
            },
            "dataDisks": [
                {
                    "lun": lun,
                    "diskSizeGB": int(disk.props["diskSizeGB"]),
                    "managedDisk": {"id": disk.id},
                    "caching": "None",
                    "storageAccountType": disk.body["sku"]["name"],
                }
                for lun, disk in disks
            ],
            "zoneResilient": False,
        }
        props["provisioningState"] = "Creating"
        result["properties"] = props
        image = Resource(ref.id, IMAGE, result, internal)
        emu.store.put(image)

        async def work() -> None:
            await _copy_all(emu, vm.id, copies)
            image.props["provisioningState"] = "Succeeded"
            emu.store.touch()

        def failed(error: errors.ArmError) -> None:
            image.props["provisioningState"] = "Failed"

        return emu.put_response(request, ref, image, True, work, failed)

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        """Azure refuses to delete a managed image while VMs are still being provisioned from
        it, and allows it once they are (their disks are their own copies): AD
        troubleshooting/common-deployment-errors.md, OperationNotAllowedOnVMImageAsVMsBeing-
        Provisioned ("Retry the image delete operation after the deployment of the VM is
        complete", RULES.md 1.5). The answer as seen in nanovms/ops#766 (also
        Azure/azure-cli#6254): code OperationNotAllowed and the message below."""
        wanted = resource.id.lower()
        provisioning = [
            vm.name
            for vm in emu.store.of_type(VM)
            if vm.props.get("provisioningState") == "Creating"
            and str(
                ((vm.props.get("storageProfile") or {}).get("imageReference") or {}).get("id") or ""
            ).lower()
            == wanted
        ]
        if provisioning:
            raise errors.operation_not_allowed(
                f"Operation 'Image Delete' is not allowed since the Virtual Machines "
                f"'{','.join(sorted(provisioning))}' are being provisioned using the Image "
                f"'{resource.name}'."
            )

    async def remove(self, emu: Emulator, resource: Resource) -> None:
        await _delete_frozen(emu, resource)
        emu.store.delete(resource.id)


class _ParentCheckingKind(Kind):
    """Nested gallery resources: the parent must exist; a parent with children stays."""

    def parent(self, emu: Emulator, ref: ResourceRef) -> Resource:
        parent = emu.store.get(ref.parent().id)
        emu.require_group(ref.subscription, ref.group)
        if parent is None:
            raise errors.ArmError(
                404,
                "ParentResourceNotFound",
                "Can not perform requested operation on nested resource. Parent resource "
                f"'{'/'.join(ref.names[:-1])}' not found.",
            )
        return parent

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        # A gallery or image definition holding children: "can not delete resource before
        # nested resources are deleted" (seen in Azure/AgentBaker#2767).
        if emu.store.under(resource.id):
            raise errors.ArmError(
                409,
                "CannotDeleteResource",
                "Can not delete resource before nested resources are deleted.",
            )


class GalleryKind(_ParentCheckingKind):
    type_name = GALLERY
    name_rule = naming.GALLERY

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        props = copy_json(body.get("properties") or {})
        props["identifier"] = {"uniqueName": f"{ref.subscription}-{ref.name.upper()}"}
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        return _store_done(emu, request, ref, Resource(ref.id, GALLERY, result), existing)


class GalleryImageKind(_ParentCheckingKind):
    type_name = GALLERY_IMAGE
    name_rule = naming.GALLERY_IMAGE

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        self.parent(emu, ref)
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        props = copy_json(body.get("properties") or {})
        for required in ("osType", "osState", "identifier"):
            if not props.get(required):
                raise errors.invalid_parameter(
                    f"Required parameter '{required}' is missing (null).", required
                )
        props.setdefault("hyperVGeneration", "V1")
        _check_features(props)
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        return _store_done(emu, request, ref, Resource(ref.id, GALLERY_IMAGE, result), existing)


class GalleryVersionKind(_ParentCheckingKind):
    type_name = GALLERY_VERSION
    name_rule = naming.GALLERY_IMAGE

    def check_name(self, ref: ResourceRef) -> None:
        naming.check_gallery_version(ref.name)

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        definition = self.parent(emu, ref)
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        if existing is not None:
            existing.body["tags"] = result["tags"]
            emu.store.touch()
            return emu.put_response(request, ref, existing, False, None, None, "Updating")
        props = copy_json(body.get("properties") or {})
        source = dict((props.get("storageProfile") or {}).get("source") or {})
        source_id = source.get("virtualMachineId") or source.get("id")
        if not source_id:
            raise errors.invalid_parameter(
                "storageProfile.source.id or virtualMachineId is required.", "source"
            )
        folder = emu.state_dir / "images" / f"gallery-{uuid.uuid4().hex[:12]}"
        image = emu.find(source_id, IMAGE)
        vm: Resource | None = None
        if image is not None:
            if image.props.get("provisioningState") != "Succeeded":
                raise errors.operation_not_allowed(f"Image {source_id} is not ready.")
        else:
            generalized = str(definition.props.get("osState", "")).lower() == "generalized"
            vm = _source_vm(emu, source_id, need_generalized=generalized)
        traits = _version_traits(definition, vm, image, source_id)
        internal, copies = _plan_copies(emu, vm, image, folder, traits)
        internal["folder"] = str(folder)
        os_size, data = _storage_profile_disks(internal)
        publishing = dict(props.get("publishingProfile") or {})
        publishing.setdefault(
            "targetRegions",
            [
                {
                    "name": result["location"],
                    "regionalReplicaCount": 1,
                    "storageAccountType": "Standard_LRS",
                }
            ],
        )
        for region in publishing["targetRegions"]:
            region.setdefault("storageAccountType", "Standard_LRS")
        publishing.setdefault("replicaCount", 1)
        publishing.setdefault("excludeFromLatest", False)
        publishing.setdefault("storageAccountType", "Standard_LRS")
        publishing["publishedDate"] = now_iso()
        props["publishingProfile"] = publishing
        props["storageProfile"] = {
            "source": source,
            "osDiskImage": {"sizeInGB": os_size, "hostCaching": "ReadWrite"},
            "dataDiskImages": [dict(d, hostCaching="None") for d in data],
        }
        props.setdefault("safetyProfile", {"allowDeletionOfReplicatedLocations": True})
        props["provisioningState"] = "Creating"
        result["properties"] = props
        version = Resource(ref.id, GALLERY_VERSION, result, internal)
        emu.store.put(version)

        async def work() -> None:
            await _copy_all(emu, vm.id if vm else None, copies)
            version.props["provisioningState"] = "Succeeded"
            emu.store.touch()

        def failed(error: errors.ArmError) -> None:
            version.props["provisioningState"] = "Failed"

        return emu.put_response(request, ref, version, True, work, failed)

    def view(self, emu: Emulator, resource: Resource, request: web.Request) -> dict[str, Any]:
        if request.query.get("$expand", "").lower() != "replicationstatus":
            return resource.body
        body = dict(resource.body)
        done = resource.props.get("provisioningState") == "Succeeded"
        body["properties"] = dict(
            resource.props,
            replicationStatus={
                "aggregatedState": "Completed" if done else "InProgress",
                "summary": [
                    {
                        "region": resource.body["location"],
                        "state": "Completed" if done else "Replicating",
                        "details": "",
                        "progress": 100 if done else 0,
                    }
                ],
            },
        )
        return body

    async def get(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        return json_response(self.view(emu, emu.require(ref), request))

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        """Versions have no children."""

    async def remove(self, emu: Emulator, resource: Resource) -> None:
        await _delete_frozen(emu, resource)
        emu.store.delete(resource.id)


def _generation_of(vm: Resource) -> str:
    return str(vm.internal.get("generation", "V2"))


def _generation_conflict(source_id: str, source: str, parent: str, kind: str) -> errors.ArmError:
    """MicrosoftDocs/azure-docs#118774 (RULES.md 1.7), for gallery versions; the managed image
    wording is inferred from it."""
    parent_name = "parent gallery image" if kind == "gallery" else "requested image"
    return errors.ArmError(
        409,
        "Conflict",
        f"The resource with id '{source_id}' has a different Hypervisor generation ['{source}'] "
        f"than the {parent_name} Hypervisor generation ['{parent}'].",
    )


def _definition_security(props: dict[str, Any]) -> str:
    value = features_of(props).get("securitytype")
    if not value:
        return STANDARD
    return next((t for t in IMAGE_SECURITY_TYPES if t.lower() == value.lower()), value)


def _check_features(props: dict[str, Any]) -> None:
    features = features_of(props)
    security = features.get("securitytype")
    if security and security.lower() not in (t.lower() for t in IMAGE_SECURITY_TYPES):
        raise errors.invalid_parameter(
            f"The value '{security}' of feature 'SecurityType' is invalid.", "features"
        )
    controllers = features.get("diskcontrollertypes")
    if controllers is not None and not all(
        p.strip().lower() in ("scsi", "nvme") for p in controllers.split(",")
    ):
        raise errors.invalid_parameter(
            f"The value '{controllers}' of feature 'DiskControllerTypes' is invalid.", "features"
        )


def _version_traits(
    definition: Resource, vm: Resource | None, image: Resource | None, source_id: str
) -> ImageTraits:
    """What VMs made from the new version may be: the definition's generation, security type
    and disk controllers, after checking that the source fits them.

    ACD trusted-launch-portal.md (2024-05-21): `TrustedLaunchSupported` definitions take
    sources without VM guest state (a VHD, a managed image, a gallery version); `TrustedLaunch`
    definitions take a Trusted Launch VM capture and make Trusted Launch VMs only."""
    props = definition.props
    generation = str(props.get("hyperVGeneration") or "V1").upper()
    security = _definition_security(props)
    if vm is not None:
        source_generation = _generation_of(vm)
    else:
        assert image is not None
        source_generation = traits_of(image.internal).generation
    if source_generation != generation:
        raise _generation_conflict(source_id, source_generation, generation, "gallery")
    if vm is not None:
        vm_security = str(vm.internal.get("security_type", STANDARD))
        if vm_security == TRUSTED_LAUNCH and security not in (TRUSTED_LAUNCH, "ConfidentialVM"):
            # As users report it (a public Trusted Launch re-capture runbook, 2026).
            raise errors.ArmError(
                409,
                "Conflict",
                f"The source '{vm.id}' contains TrustedLaunch or ConfidentialVM security data "
                f"that cannot be used in image with '{security}' security type. Please use "
                "either TrustedLaunch or ConfidentialVM security type.",
            )
        if vm_security != TRUSTED_LAUNCH and security == TRUSTED_LAUNCH_SUPPORTED:
            raise errors.invalid_parameter(  # hashicorp/packer-plugin-azure#304 (RULES.md 1.7)
                f"The security type '{TRUSTED_LAUNCH_SUPPORTED}' is not supported for the source "
                f"id '{vm.id}'. Currently only Vhd Blob, User Image and Gallery Image Version "
                f"sources are supported for '{TRUSTED_LAUNCH_SUPPORTED}' images.",
                "source",
            )
    # Without the DiskControllerTypes feature an image is SCSI only (ACD nvme-overview.md).
    controllers = parse_controllers(features_of(props).get("diskcontrollertypes"))
    return ImageTraits(generation, security, controllers)


def _store_done(
    emu: Emulator,
    request: web.Request,
    ref: ResourceRef,
    resource: Resource,
    existing: Resource | None,
) -> web.Response:
    """Store a resource whose PUT needs no background work, and answer as ARM does."""
    emu.store.put(resource)
    state = "Creating" if existing is None else "Updating"
    return emu.put_response(request, ref, resource, existing is None, None, None, state)
