"""Microsoft.Compute/disks: the managed disks VMs create (OS and data), stand-alone empty disks,
listed and deleted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.arm import errors, naming
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import ResourceRef
from localcloud.arm.kinds.base import Kind, checked_tags
from localcloud.arm.operations import now_iso
from localcloud.arm.store import Resource

DISK = "Microsoft.Compute/disks"


def new_disk(
    emu: Emulator,
    disk_id: str,
    location: str,
    *,
    size_gb: int,
    storage_type: str,
    create_option: str,
    vm_id: str,
    os_disk: bool,
    with_file: bool,
) -> Resource:
    """Record a disk attached to `vm_id`; its file or folder is made later by the runner."""
    unique = str(uuid.uuid4())
    name = disk_id.rsplit("/", 1)[-1]
    props: dict[str, Any] = {
        "creationData": {"createOption": create_option},
        "diskSizeGB": size_gb,
        "diskSizeBytes": size_gb * 1024**3,
        "diskState": "Attached",
        "timeCreated": now_iso(),
        "uniqueId": unique,
        "provisioningState": "Succeeded",
    }
    if os_disk:
        props["osType"] = "Linux"
        props["hyperVGeneration"] = "V2"
    body = {
        "id": disk_id,
        "name": name,
        "type": DISK,
        "location": location,
        "tags": {},
        "managedBy": vm_id,
        "sku": {
            "name": storage_type,
            "tier": "Premium" if "Premium" in storage_type else "Standard",
        },
        "properties": props,
    }
    internal: dict[str, Any] = {}
    if with_file:
        suffix = "" if os_disk else ".img"
        internal["path"] = str(emu.state_dir / "disks" / f"{unique}{suffix}")
    resource = Resource(disk_id, DISK, body, internal)
    emu.store.put(resource)
    return resource


def disk_path(disk: Resource) -> Path | None:
    path = disk.internal.get("path")
    return Path(path) if path else None


class DiskKind(Kind):
    type_name = DISK
    name_rule = naming.COMPUTE

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        if existing is None:
            return self._create_empty(emu, request, ref, body)
        if "tags" in body:
            existing.body["tags"] = checked_tags(body["tags"] or {})
            emu.store.touch()
        return emu.put_response(request, ref, existing, False, None)

    def _create_empty(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        """A stand-alone empty disk (createOption Empty), unattached: a record, no file, since
        nothing can attach it here. Other create options come only through a VM."""
        props = body.get("properties") or {}
        option = str((props.get("creationData") or {}).get("createOption", ""))
        if option.lower() != "empty":
            raise errors.invalid_parameter(
                "localcloud creates a stand-alone disk only with createOption Empty; other disks "
                "come through a virtual machine's storageProfile.",
                "creationData.createOption",
            )
        size = props.get("diskSizeGB")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 32767:
            raise errors.invalid_parameter(
                "diskSizeGB must be a whole number from 1 to 32767.", "diskSizeGB"
            )
        if not body.get("location"):
            raise errors.invalid_parameter("location is required.", "location")
        storage = str((body.get("sku") or {}).get("name") or "Standard_LRS")
        resource = new_disk(
            emu,
            ref.id,
            str(body["location"]),
            size_gb=size,
            storage_type=storage,
            create_option="Empty",
            vm_id="",
            os_disk=False,
            with_file=False,
        )
        resource.body.pop("managedBy", None)
        resource.body["properties"]["diskState"] = "Unattached"
        resource.body["tags"] = checked_tags(body.get("tags") or {})
        emu.store.touch()
        # Compute's disk PUT answers a create with 202 (body, Azure-AsyncOperation, Location).
        op_id = emu.operations.start(None)
        headers = emu.operation_urls(request, ref, str(body["location"]), op_id)
        return json_response(json.loads(json.dumps(resource.body)), 202, headers)

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        if resource.body.get("managedBy"):
            raise errors.ArmError(
                409,
                "OperationNotAllowed",
                f"Disk {resource.name} is attached to VM {resource.body['managedBy']}.",
            )

    async def remove(self, emu: Emulator, resource: Resource) -> None:
        path = disk_path(resource)
        if path is not None:
            await emu.blocking(emu.runner.delete_disk, path)
        emu.store.delete(resource.id)
