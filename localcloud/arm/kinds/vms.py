"""Microsoft.Compute/virtualMachines: create, instance view, power actions, generalize, delete."""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from localcloud.arm import errors, naming
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import ResourceRef
from localcloud.arm.kinds.base import Kind, checked_tags, copy_json, ref_id
from localcloud.arm.kinds.disks import DISK, disk_path, new_disk
from localcloud.arm.kinds.images import ImageSource, resolve_image
from localcloud.arm.kinds.network import NIC, nic_public_ips, remove_nic
from localcloud.arm.kinds.platform import check_storage_type, decide, exact_version
from localcloud.arm.operations import now_iso
from localcloud.arm.store import Resource
from localcloud.sandbox.api import DEFAULT_BASE_IMAGE, BootSpec, DataDisk, GuestConfig

VM = "Microsoft.Compute/virtualMachines"
RECORDS_ONLY_TAG = "localcloud-records-only"
# localcloud's own knob (a tag means nothing to Azure): seconds this VM's first-boot package job
# holds the dpkg lock, instead of the runner's default. 0 to 600.
FIRST_BOOT_LOCK_TAG = "localcloud-first-boot-lock-seconds"
_DISPLAY = {
    "starting": "VM starting",
    "running": "VM running",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


def vm_key(resource_id: str) -> str:
    """Short, stable and unique per VM resource id (the runner names its sandbox after it)."""
    return "vm" + hashlib.sha256(resource_id.lower().encode()).hexdigest()[:10]


def record_vm_body(ref: ResourceRef, location: str, tags: dict[str, str]) -> dict[str, Any]:
    """A VM record as ARM shows it, for VMs that exist only as records (scale tests)."""
    return {
        "id": ref.id,
        "name": ref.name,
        "type": VM,
        "location": location,
        "tags": dict(tags),
        "etag": FIRST_ETAG,
        "properties": {
            "vmId": str(uuid.uuid4()),
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {"osDisk": {"osType": "Linux", "createOption": "FromImage"}},
            "osProfile": {"computerName": ref.name[:64], "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": []},
            "provisioningState": "Succeeded",
            "timeCreated": now_iso(),
        },
    }


def record_vm_internal(ref: ResourceRef) -> dict[str, Any]:
    return {
        "vm_key": vm_key(ref.id),
        "power": "running",
        "generalized": False,
        "records_only": True,
        "os_disk": None,
        "data_disks": [],
    }


# Compute returns a VM's etag in Create/Update/Get and honours If-Match / If-None-Match on PUT
# and PATCH (virtualMachine.json, 2025-04-01); a mismatch is 412 PreconditionFailed.
FIRST_ETAG = '"1"'


def _next_etag(request: web.Request, vm: Resource) -> str:
    """The etag after this write, or 412 when the request's precondition does not hold."""
    current = str(vm.body.get("etag") or FIRST_ETAG)
    wanted = request.headers.get("If-Match")
    if wanted and wanted != "*" and wanted != current:
        raise errors.ArmError(
            412,
            "PreconditionFailed",
            f"Etag provided in if-match header {wanted} does not match etag {current} of resource.",
        )
    if request.headers.get("If-None-Match") == "*":
        raise errors.ArmError(412, "PreconditionFailed", "The resource already exists.")
    return f'"{int(current.strip(chr(34)) or 0) + 1}"'


class VirtualMachineKind(Kind):
    type_name = VM
    name_rule = naming.VIRTUAL_MACHINE

    # --- create / update --------------------------------------------------------------------
    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        if existing is not None:
            return self._update(emu, request, ref, existing, body)
        result = self.base_body(ref, body, None)
        result["etag"] = FIRST_ETAG
        location = result["location"]
        props = copy_json(body.get("properties") or {})
        storage = props.get("storageProfile") or {}
        os_req = storage.get("osDisk") or {}
        source = resolve_image(emu, storage.get("imageReference") or {}, location)
        platform = decide(
            props,
            source.traits,
            emu.settings.default_security_type,
            request.query.get("api-version", ""),
        )
        guest = _guest_config(ref, props)
        nics = _check_nics(emu, ref, props)
        tags = result["tags"]
        records_only = (
            emu.settings.records_only or str(tags.get(RECORDS_ONLY_TAG, "")).lower() == "true"
        )

        def disk_id(name: str) -> str:
            return (
                f"/subscriptions/{ref.subscription}/resourceGroups/{ref.group}/providers/"
                f"Microsoft.Compute/disks/{name}"
            )

        os_name = os_req.get("name") or f"{ref.name}_OsDisk_1_{uuid.uuid4().hex}"
        naming.COMPUTE.check(os_name, DISK)
        os_type = (os_req.get("managedDisk") or {}).get("storageAccountType", "Premium_LRS")
        os_size = int(os_req.get("diskSizeGB") or source.os_size_gb)
        _not_smaller(os_size, source.os_size_gb, "osDisk.diskSizeGB")
        data_specs = _data_disk_specs(ref, storage.get("dataDisks") or [], source)
        size_name = str((props.get("hardwareProfile") or {}).get("vmSize", ""))
        for storage_type in (os_type, *(spec["storage_type"] for spec in data_specs)):
            check_storage_type(size_name, storage_type)
        for spec in data_specs:
            naming.COMPUTE.check(spec["name"], DISK)
            if emu.store.get(disk_id(spec["name"])) is not None:
                raise errors.ArmError(
                    409, "ConflictingUserInput", f"Disk {spec['name']} already exists."
                )

        os_disk = new_disk(
            emu,
            disk_id(os_name),
            location,
            size_gb=os_size,
            storage_type=os_type,
            create_option="FromImage",
            vm_id=ref.id,
            os_disk=True,
            with_file=not records_only,
        )
        os_entry = {
            "osType": "Linux",
            "name": os_name,
            "createOption": os_req.get("createOption", "FromImage"),
            "caching": os_req.get("caching", "ReadWrite"),
            "managedDisk": {"storageAccountType": os_type, "id": os_disk.id},
            "deleteOption": os_req.get("deleteOption", "Detach"),
            "diskSizeGB": os_size,
        }
        data_entries = []
        data_internal = []
        for spec in data_specs:
            disk = new_disk(
                emu,
                disk_id(spec["name"]),
                location,
                size_gb=spec["size_gb"],
                storage_type=spec["storage_type"],
                create_option=spec["createOption"],
                vm_id=ref.id,
                os_disk=False,
                with_file=not records_only,
            )
            data_entries.append(
                {
                    "lun": spec["lun"],
                    "name": spec["name"],
                    "createOption": spec["createOption"],
                    "caching": spec["caching"],
                    "managedDisk": {"storageAccountType": spec["storage_type"], "id": disk.id},
                    "deleteOption": spec["deleteOption"],
                    "diskSizeGB": spec["size_gb"],
                    "toBeDetached": False,
                }
            )
            data_internal.append({"lun": spec["lun"], "disk": disk.id, "source": spec["source"]})

        image_ref = dict(storage.get("imageReference") or {})
        if not image_ref.get("id"):
            # Read-only: what the caller sent is replaced by what the platform resolved.
            image_ref["exactVersion"] = exact_version(image_ref)
        os_profile = _public_os_profile(props.get("osProfile") or {}, guest)
        props["storageProfile"] = {
            "imageReference": image_ref,
            "osDisk": os_entry,
            "dataDisks": data_entries,
            "diskControllerType": platform.controller,
        }
        props.pop("securityProfile", None)
        if platform.security_profile is not None:
            props["securityProfile"] = platform.security_profile
        props["osProfile"] = os_profile
        props.setdefault("hardwareProfile", {"vmSize": "Standard_D2s_v3"})
        props["vmId"] = str(uuid.uuid4())
        props["timeCreated"] = now_iso()
        props["provisioningState"] = "Creating"
        result["properties"] = props
        internal = {
            "vm_key": vm_key(ref.id),
            "power": "starting",
            "generalized": False,
            "records_only": records_only,
            "os_disk": os_disk.id,
            "os_source": str(source.os_path) if source.os_path else None,
            "os_base": source.base,
            "data_disks": data_internal,
            "generation": platform.generation,
            "security_type": platform.security_type,
            "controllers": list(platform.controllers),
            "guest": _guest_record(guest),
            "first_boot_lock_s": _first_boot_lock(tags),
        }
        vm = Resource(ref.id, VM, result, internal)
        emu.store.put(vm)
        for nic in nics:
            nic.props["virtualMachine"] = {"id": ref.id}
            nic.props["macAddress"] = "00-0D-3A-" + "-".join(
                f"{random.randrange(256):02X}" for _ in range(3)
            )
        emu.store.touch()

        async def work() -> None:
            async with emu.lock(ref.id):
                await _first_boot(emu, vm)

        def failed(error: errors.ArmError) -> None:
            vm.props["provisioningState"] = "Failed"
            vm.internal["failure"] = {"code": error.code, "message": error.message}
            vm.internal["power"] = "stopped"
            emu.store.touch()

        return emu.put_response(request, ref, vm, True, work, failed)

    def _update(
        self,
        emu: Emulator,
        request: web.Request,
        ref: ResourceRef,
        vm: Resource,
        body: dict[str, Any],
    ) -> web.Response:
        """Re-PUT of an existing VM: tags and size change; the rest stays as created."""
        vm.body["etag"] = _next_etag(request, vm)
        if "tags" in body:
            vm.body["tags"] = checked_tags(body["tags"] or {})
        hardware = (body.get("properties") or {}).get("hardwareProfile")
        if hardware:
            vm.props["hardwareProfile"] = hardware
        emu.store.touch()
        return emu.put_response(request, ref, vm, False, None, None, "Updating")

    async def patch(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        vm = emu.require(ref)
        return self._update(emu, request, ref, vm, body)

    # --- views ------------------------------------------------------------------------------
    def view(self, emu: Emulator, resource: Resource, request: web.Request) -> dict[str, Any]:
        expand = request.query.get("$expand", "").lower()
        if expand != "instanceview" and request.query.get("statusOnly", "").lower() != "true":
            return resource.body
        body = dict(resource.body)
        body["properties"] = dict(resource.props, instanceView=instance_view(emu, resource))
        return body

    async def get(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        return json_response(self.view(emu, emu.require(ref), request))

    # --- actions ----------------------------------------------------------------------------
    async def action(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, action: str
    ) -> web.Response:
        vm = emu.require(ref)
        name = action.lower()
        if name == "instanceview" and request.method == "GET":
            return json_response(instance_view(emu, vm))
        if request.method != "POST":
            raise errors.ArmError(405, "MethodNotAllowed", f"{request.method} {action}")
        power = current_power(emu, vm)
        if vm.props.get("provisioningState") in ("Creating", "Deleting"):
            raise errors.operation_not_allowed(
                f"Operation '{action}' is not allowed on VM '{ref.name}' since the VM is "
                f"{vm.props['provisioningState'].lower()}."
            )
        location = vm.body["location"]
        if name == "generalize":
            if power not in ("stopped", "deallocated"):
                raise errors.operation_not_allowed(
                    f"Operation 'generalize' is not allowed on VM '{ref.name}' since the VM is "
                    f"{power}. Stop or deallocate the VM and retry."
                )
            vm.internal["generalized"] = True
            emu.store.touch()
            return web.Response(status=200)
        if name in ("start", "restart") and vm.internal.get("generalized"):
            raise errors.operation_not_allowed(
                f"Operation '{name}' is not allowed on VM '{ref.name}' since the VM is generalized."
            )
        if name == "start":
            if power == "running":
                return emu.accepted(request, ref, location, None)
            return self._transition(emu, request, ref, vm, "starting", "running", boot=True)
        if name == "restart":
            if power != "running":
                raise errors.operation_not_allowed(
                    f"Operation 'restart' is not allowed on VM '{ref.name}' since the VM is "
                    f"{power}."
                )
            return self._transition(emu, request, ref, vm, "starting", "running", boot=True)
        if name == "poweroff":
            return self._transition(emu, request, ref, vm, "stopping", "stopped", boot=False)
        if name == "deallocate":
            return self._transition(emu, request, ref, vm, "deallocating", "deallocated", False)
        return await super().action(emu, request, ref, action)

    def _transition(
        self,
        emu: Emulator,
        request: web.Request,
        ref: ResourceRef,
        vm: Resource,
        during: str,
        after: str,
        boot: bool,
    ) -> web.Response:
        vm.internal["power"] = during
        emu.store.touch()

        async def work() -> None:
            async with emu.lock(vm.id):
                if not vm.internal.get("records_only"):
                    await emu.blocking(emu.runner.shutdown, vm.internal["vm_key"])
                _set_address(emu, vm, None, keep=(after == "stopped"))
                if boot:
                    address = await _boot(emu, vm, guest=None)
                    _set_address(emu, vm, address)
                vm.internal["power"] = after
                emu.store.touch()

        def failed(error: errors.ArmError) -> None:
            vm.internal["power"] = "stopped"
            emu.store.touch()

        return emu.accepted(request, ref, vm.body["location"], work, failed)

    # --- delete -----------------------------------------------------------------------------
    async def remove(self, emu: Emulator, resource: Resource) -> None:
        async with emu.lock(resource.id):
            if not resource.internal.get("records_only"):
                await emu.blocking(emu.runner.shutdown, resource.internal["vm_key"])
            _set_address(emu, resource, None)
            storage = resource.props.get("storageProfile", {})
            entries = [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
            for entry in entries:
                disk = emu.find(ref_id(entry.get("managedDisk")), DISK)
                if disk is None:
                    continue
                if str(entry.get("deleteOption", "Detach")).lower() == "delete":
                    path = disk_path(disk)
                    if path is not None:
                        await emu.blocking(emu.runner.delete_disk, path)
                    emu.store.delete(disk.id)
                else:
                    disk.body.pop("managedBy", None)
                    disk.props["diskState"] = "Unattached"
            for entry in resource.props.get("networkProfile", {}).get("networkInterfaces", []):
                nic = emu.find(entry.get("id"), NIC)
                if nic is None:
                    continue
                nic.props.pop("virtualMachine", None)
                nic.props.pop("macAddress", None)
                option = (entry.get("properties") or {}).get("deleteOption", "Detach")
                if str(option).lower() == "delete":
                    pips = nic_public_ips(emu, nic)
                    remove_nic(emu, nic)
                    for pip in pips:
                        if str(pip.props.get("deleteOption", "")).lower() == "delete":
                            emu.store.delete(pip.id)
            emu.store.delete(resource.id)


# --- power state and instance view -------------------------------------------------------------
def current_power(emu: Emulator, vm: Resource) -> str:
    """The power state, noticing a sandbox that died: a VM that should run but does not is
    reported stopped (as Azure reports a crashed VM), never as running."""
    power = str(vm.internal.get("power", "stopped"))
    if (
        power == "running"
        and not vm.internal.get("records_only")
        and not emu.runner.is_running(vm.internal["vm_key"])
    ):
        vm.internal["power"] = power = "stopped"
        _set_address(emu, vm, None)
        emu.store.touch()
    return power


def instance_view(emu: Emulator, vm: Resource) -> dict[str, Any]:
    power = current_power(emu, vm)
    state = str(vm.props.get("provisioningState", "Succeeded")).lower()
    time = now_iso()
    provisioning: dict[str, Any] = {
        "code": f"ProvisioningState/{state}",
        "level": "Info",
        "displayStatus": "Provisioning succeeded" if state == "succeeded" else state.title(),
        "time": time,
    }
    if state == "failed":
        # Azure names why: ProvisioningState/failed/<code> with the error's message
        # (taskcluster/taskcluster#3347: "ProvisioningState/failed/OSProvisioningTimedOut").
        failure = vm.internal.get("failure") or {
            "code": "InternalExecutionError",
            "message": "An internal execution error occurred.",
        }
        provisioning.update(
            code=f"ProvisioningState/failed/{failure['code']}",
            level="Error",
            displayStatus="Provisioning failed",
            message=failure["message"],
        )
    statuses = [
        provisioning,
        {"code": f"PowerState/{power}", "level": "Info", "displayStatus": _DISPLAY[power]},
    ]
    if vm.internal.get("generalized"):
        statuses.append(
            {"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"}
        )
    storage = vm.props.get("storageProfile", {})
    disks = [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
    view: dict[str, Any] = {
        "computerName": vm.props.get("osProfile", {}).get("computerName"),
        "osName": "ubuntu",
        "osVersion": "24.04",
        "hyperVGeneration": vm.internal.get("generation", "V2"),
        "disks": [
            {
                "name": d.get("name"),
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "time": time,
                    }
                ],
            }
            for d in disks
            if d.get("name")
        ],
        "statuses": statuses,
    }
    if power == "running":
        view["vmAgent"] = {
            "vmAgentVersion": "2.12.0.2",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "Guest Agent is running",
                    "time": time,
                }
            ],
        }
    return view


# --- helpers --------------------------------------------------------------------------------
def _guest_config(ref: ResourceRef, props: dict[str, Any]) -> GuestConfig:
    profile = props.get("osProfile")
    if not profile:
        raise errors.invalid_parameter(
            "Required parameter 'osProfile' is missing (null).", "osProfile"
        )
    computer_name = profile.get("computerName") or ref.name
    naming.check_linux_computer_name(computer_name)
    admin = profile.get("adminUsername")
    if not admin:
        raise errors.invalid_parameter(
            "Required parameter 'adminUsername' is missing (null).", "adminUsername"
        )
    ssh = (profile.get("linuxConfiguration") or {}).get("ssh") or {}
    keys = [k["keyData"] for k in ssh.get("publicKeys") or [] if k.get("keyData")]
    custom: bytes | None = None
    if profile.get("customData"):
        try:
            custom = base64.b64decode(profile["customData"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise errors.invalid_parameter(
                "customData must be base64 encoded.", "customData"
            ) from error
    return GuestConfig(computer_name, admin, keys, custom)


def _first_boot_lock(tags: dict[str, Any]) -> float | None:
    try:
        seconds = float(tags.get(FIRST_BOOT_LOCK_TAG, ""))
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 600 else None


def _guest_record(guest: GuestConfig) -> dict[str, Any]:
    """Kept only until the first boot (customData may carry a host key)."""
    return {
        "hostname": guest.hostname,
        "admin_username": guest.admin_username,
        "authorized_keys": guest.authorized_keys,
        "custom_data": base64.b64encode(guest.custom_data).decode() if guest.custom_data else None,
    }


def _public_os_profile(profile: dict[str, Any], guest: GuestConfig) -> dict[str, Any]:
    """osProfile as ARM returns it: never customData or a password."""
    shown = {k: v for k, v in profile.items() if k not in ("customData", "adminPassword")}
    shown["computerName"] = guest.hostname
    shown.setdefault("secrets", [])
    shown.setdefault("allowExtensionOperations", True)
    shown.setdefault("requireGuestProvisionSignal", True)
    linux = dict(shown.get("linuxConfiguration") or {})
    linux.setdefault("disablePasswordAuthentication", True)
    linux.setdefault("provisionVMAgent", True)
    shown["linuxConfiguration"] = linux
    return shown


def _check_nics(emu: Emulator, ref: ResourceRef, props: dict[str, Any]) -> list[Resource]:
    entries = (props.get("networkProfile") or {}).get("networkInterfaces") or []
    if not entries:
        raise errors.invalid_parameter(
            "At least one network interface is required (networkProfile.networkInterfaces).",
            "networkProfile",
        )
    nics = []
    for entry in entries:
        nic_id = entry.get("id", "")
        nic = emu.find(nic_id, NIC)
        if nic is None:
            raise errors.ArmError(404, "NotFound", f"Resource {nic_id} not found.")
        holder = ref_id(nic.props.get("virtualMachine"))
        if holder and holder.lower() != ref.id.lower():
            raise errors.ArmError(
                400,
                "NicInUse",
                f"Network Interface {nic_id} is used by existing resource {holder}.",
            )
        nics.append(nic)
    return nics


def _not_smaller(asked_gb: int, image_gb: int, target: str) -> None:
    """A disk made from an image may be larger than the image's, never smaller (Azure's
    answer quoted in Azure/azure-sdk-for-python#23051: 409 OperationNotAllowed, this text)."""
    if asked_gb < image_gb:
        raise errors.ArmError(
            409,
            "OperationNotAllowed",
            f"The specified disk size {asked_gb} GB is smaller than the size of the "
            f"corresponding disk in the VM image: {image_gb} GB. This is not allowed. Please "
            "choose equal or greater size or do not specify an explicit size.",
            target,
        )


def _data_disk_specs(
    ref: ResourceRef, requested: list[dict[str, Any]], source: ImageSource
) -> list[dict[str, Any]]:
    """One entry per data disk: the image's disks (implicit, as on Azure) and Empty ones."""
    by_lun: dict[int, dict[str, Any]] = {}
    for image_disk in source.data_disks:
        by_lun[image_disk.lun] = {
            "lun": image_disk.lun,
            "createOption": "FromImage",
            "size_gb": image_disk.size_gb,
            "source": str(image_disk.path) if image_disk.path else None,
        }
    seen: set[int] = set()
    for entry in requested:
        lun = int(entry.get("lun", -1))
        if lun < 0 or lun > 63 or lun in seen:
            raise errors.invalid_parameter(f"Data disk LUN {lun} is invalid or repeated.", "lun")
        seen.add(lun)
        option = str(entry.get("createOption", "Empty"))
        spec = by_lun.get(lun, {"lun": lun, "source": None})
        if option.lower() == "empty":
            if not entry.get("diskSizeGB"):
                raise errors.invalid_parameter(
                    f"Required parameter 'diskSizeGB' is missing for data disk at LUN {lun}.",
                    "diskSizeGB",
                )
            spec = {"lun": lun, "source": None, "size_gb": int(entry["diskSizeGB"])}
        elif option.lower() == "fromimage":
            if lun not in by_lun:
                raise errors.invalid_parameter(
                    f"The image has no data disk at LUN {lun}.", "dataDisks"
                )
            asked = int(entry.get("diskSizeGB") or spec["size_gb"])
            _not_smaller(asked, spec["size_gb"], f"dataDisks[{lun}].diskSizeGB")
            spec["size_gb"] = asked
        else:
            raise errors.invalid_parameter(
                f"createOption {option} is not supported by localcloud for data disks.",
                "createOption",
            )
        spec.update(
            name=entry.get("name"),
            createOption="Empty" if option.lower() == "empty" else "FromImage",
            caching=entry.get("caching", "None"),
            deleteOption=entry.get("deleteOption", "Detach"),
            storage_type=(entry.get("managedDisk") or {}).get("storageAccountType", "Premium_LRS"),
        )
        by_lun[lun] = spec
    specs = []
    for lun in sorted(by_lun):
        spec = by_lun[lun]
        spec.setdefault("caching", "ReadOnly")
        spec.setdefault("deleteOption", "Detach")
        spec.setdefault("storage_type", "Premium_LRS")
        spec.setdefault("createOption", "FromImage")
        if not spec.get("name"):
            spec["name"] = f"{ref.name}_disk{lun + 2}_{uuid.uuid4().hex}"
        specs.append(spec)
    return specs


async def _first_boot(emu: Emulator, vm: Resource) -> None:
    records_only = vm.internal.get("records_only")
    if not records_only:
        os_disk = emu.find(vm.internal["os_disk"], DISK)
        assert os_disk is not None
        source = vm.internal.get("os_source")
        await emu.blocking(
            emu.runner.new_os_disk, disk_path(os_disk), Path(source) if source else None
        )
        for entry in vm.internal["data_disks"]:
            disk = emu.find(entry["disk"], DISK)
            assert disk is not None
            await emu.blocking(
                emu.runner.new_data_disk,
                disk_path(disk),
                int(disk.props["diskSizeGB"]),
                Path(entry["source"]) if entry.get("source") else None,
            )
    record = vm.internal.get("guest") or {}
    guest = GuestConfig(
        record.get("hostname", vm.name),
        record.get("admin_username", "azureuser"),
        list(record.get("authorized_keys", [])),
        base64.b64decode(record["custom_data"]) if record.get("custom_data") else None,
        instance_id=str(vm.props.get("vmId") or uuid.uuid4()),  # Azure's instance id is vmId
    )
    address = await _boot(emu, vm, guest, vm.internal.get("first_boot_lock_s"))
    vm.internal.pop("guest", None)
    _set_address(emu, vm, address)
    vm.internal["power"] = "running"
    vm.props["provisioningState"] = "Succeeded"
    emu.store.touch()


_records_counter = 0


async def _boot(
    emu: Emulator, vm: Resource, guest: GuestConfig | None, lock_s: float | None = None
) -> str:
    if vm.internal.get("records_only"):
        global _records_counter
        _records_counter += 1
        return f"127.0.2.{_records_counter % 250 + 1}"  # loopback, nothing listens: refused
    os_disk = emu.find(vm.internal["os_disk"], DISK)
    assert os_disk is not None
    data = []
    for entry in vm.internal["data_disks"]:
        disk = emu.find(entry["disk"], DISK)
        path = disk_path(disk) if disk else None
        if path is not None:
            data.append(DataDisk(int(entry["lun"]), path))
    path = disk_path(os_disk)
    assert path is not None
    controller = vm.props.get("storageProfile", {}).get("diskControllerType", "SCSI")
    base = str(vm.internal.get("os_base") or DEFAULT_BASE_IMAGE)
    spec = BootSpec(
        vm.internal["vm_key"],
        path,
        data,
        guest,
        disk_controller=controller,
        base_image=base,
        first_boot_lock_s=lock_s,
    )
    return await emu.blocking(emu.runner.boot, spec)


def _set_address(emu: Emulator, vm: Resource, address: str | None, keep: bool = False) -> None:
    """Show the sandbox's address on the public IPs of the VM's NICs (or clear it)."""
    if keep:
        return
    for entry in vm.props.get("networkProfile", {}).get("networkInterfaces", []):
        nic = emu.find(entry.get("id"), NIC)
        if nic is None:
            continue
        for pip in nic_public_ips(emu, nic):
            if address:
                pip.props["ipAddress"] = address
            else:
                pip.props.pop("ipAddress", None)
    vm.internal["address"] = address
    emu.store.touch()
