"""Microsoft.Network: virtual networks (with subnets), security groups, public IPs, NICs."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from aiohttp import web

from localcloud.arm import errors, naming
from localcloud.arm.emulator import Emulator, json_response
from localcloud.arm.ids import ResourceRef, parse_id
from localcloud.arm.kinds.base import Kind, copy_json, new_etag, ref_id
from localcloud.arm.store import Resource

VNET = "Microsoft.Network/virtualNetworks"
SUBNET = "Microsoft.Network/virtualNetworks/subnets"
NSG = "Microsoft.Network/networkSecurityGroups"
PIP = "Microsoft.Network/publicIPAddresses"
NIC = "Microsoft.Network/networkInterfaces"


def find_subnet(emu: Emulator, subnet_id: str | None) -> tuple[Resource, dict[str, Any]] | None:
    """The virtual network and the subnet entry `subnet_id` names, or None."""
    ref = parse_id(subnet_id or "")
    if ref is None or ref.type_name.lower() != SUBNET.lower():
        return None
    vnet = emu.find(ref.parent().id, VNET)
    if vnet is None:
        return None
    for subnet in vnet.props.get("subnets", []):
        if subnet["name"].lower() == ref.name.lower():
            return vnet, subnet
    return None


class VirtualNetworkKind(Kind):
    type_name = VNET
    name_rule = naming.VIRTUAL_NETWORK
    uses_etag = True

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        props = copy_json(body.get("properties", {}))
        old_subnets = {
            s["name"].lower(): s for s in (existing.props if existing else {}).get("subnets", [])
        }
        subnets = []
        for entry in props.get("subnets", []):
            name = entry.get("name", "")
            naming.NETWORK.check(name, SUBNET)
            old = old_subnets.pop(name.lower(), None)
            subnets.append(
                build_subnet(emu, ref.child("subnets", name), entry.get("properties", {}), old)
            )
        for gone in old_subnets.values():
            check_subnet_unused(gone)
        props["subnets"] = subnets
        props.setdefault("virtualNetworkPeerings", [])
        props.setdefault("enableDdosProtection", False)
        props["resourceGuid"] = (existing.props if existing else {}).get(
            "resourceGuid", str(uuid.uuid4())
        )
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        resource = Resource(ref.id, VNET, result)
        emu.store.put(resource)
        return emu.put_response(request, ref, resource, existing is None, None, None, "Updating")

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        for subnet in resource.props.get("subnets", []):
            check_subnet_unused(subnet)

    def list_items(
        self, emu: Emulator, request: web.Request, prefix: str
    ) -> list[dict[str, Any]] | None:
        return None


def build_subnet(
    emu: Emulator, ref: ResourceRef, props: dict[str, Any], old: dict[str, Any] | None
) -> dict[str, Any]:
    props = copy_json(props)
    nsg_id = ref_id(props.get("networkSecurityGroup"))
    if nsg_id and emu.find(nsg_id, NSG) is None:
        raise errors.invalid_reference(nsg_id, ref.id)
    if not props.get("addressPrefix") and not props.get("addressPrefixes"):
        raise errors.invalid_parameter(f"Subnet {ref.name} has no addressPrefix.", "addressPrefix")
    props["ipConfigurations"] = (old or {}).get("properties", {}).get("ipConfigurations", [])
    props.setdefault("privateEndpointNetworkPolicies", "Disabled")
    props.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
    props["provisioningState"] = "Succeeded"
    return {"name": ref.name, "id": ref.id, "etag": new_etag(), "type": SUBNET, "properties": props}


def check_subnet_unused(subnet: dict[str, Any]) -> None:
    configs = subnet.get("properties", {}).get("ipConfigurations", [])
    if configs:
        raise errors.ArmError(
            400,
            "InUseSubnetCannotBeDeleted",
            f"Subnet {subnet['name']} is in use by {configs[0]['id']} and cannot be deleted. "
            "In order to delete the subnet, delete all the resources within the subnet.",
        )


class SubnetKind(Kind):
    """Subnets live inside their virtual network's body, as ARM returns them."""

    type_name = SUBNET
    name_rule = naming.NETWORK

    def _vnet(self, emu: Emulator, ref: ResourceRef) -> Resource:
        return emu.require(ref.parent())

    def _find(self, vnet: Resource, name: str) -> dict[str, Any] | None:
        for subnet in vnet.props.get("subnets", []):
            if subnet["name"].lower() == name.lower():
                return dict(subnet)
        return None

    async def get(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        subnet = self._find(self._vnet(emu, ref), ref.name)
        if subnet is None:
            raise errors.resource_not_found(ref.type_name, "/".join(ref.names), ref.group)
        return json_response(subnet)

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        vnet = self._vnet(emu, ref)
        subnets: list[dict[str, Any]] = vnet.props.setdefault("subnets", [])
        old = self._find(vnet, ref.name)
        subnet = build_subnet(emu, ref, body.get("properties", {}), old)
        vnet.props["subnets"] = [s for s in subnets if s["name"].lower() != ref.name.lower()]
        vnet.props["subnets"].append(subnet)
        emu.store.touch()
        holder = Resource(ref.id, SUBNET, subnet)
        return emu.put_response(request, ref, holder, old is None, None, None, "Updating")

    async def patch(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        raise errors.ArmError(405, "MethodNotAllowed", "Subnets have no tags to update.")

    async def delete(self, emu: Emulator, request: web.Request, ref: ResourceRef) -> web.Response:
        vnet = self._vnet(emu, ref)
        subnet = self._find(vnet, ref.name)
        if subnet is None:
            return web.Response(status=204)
        check_subnet_unused(subnet)
        vnet.props["subnets"] = [
            s for s in vnet.props["subnets"] if s["name"].lower() != ref.name.lower()
        ]
        emu.store.touch()
        return emu.accepted(request, ref, vnet.body["location"], None)

    def list_items(
        self, emu: Emulator, request: web.Request, prefix: str
    ) -> list[dict[str, Any]] | None:
        vnet_ref = parse_id(prefix)
        assert vnet_ref is not None
        return list(emu.require(vnet_ref).props.get("subnets", []))


_DEFAULT_RULES = [
    ("AllowVnetInBound", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "AzureLoadBalancer", "*", "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "*", "Internet", "Allow", 65001, "Outbound"),
    ("DenyAllOutBound", "*", "*", "Deny", 65500, "Outbound"),
]


class NetworkSecurityGroupKind(Kind):
    type_name = NSG
    name_rule = naming.NETWORK
    uses_etag = True

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        props = copy_json(body.get("properties", {}))
        rules = []
        for rule in props.get("securityRules", []):
            name = rule.get("name", "")
            naming.NETWORK.check(name, f"{NSG}/securityRules")
            rule_props = dict(rule.get("properties", {}))
            rule_props["provisioningState"] = "Succeeded"
            rules.append(
                {
                    "name": name,
                    "id": f"{ref.id}/securityRules/{name}",
                    "etag": new_etag(),
                    "type": f"{NSG}/securityRules",
                    "properties": rule_props,
                }
            )
        props["securityRules"] = rules
        props["defaultSecurityRules"] = [
            {
                "name": name,
                "id": f"{ref.id}/defaultSecurityRules/{name}",
                "etag": new_etag(),
                "type": f"{NSG}/defaultSecurityRules",
                "properties": {
                    "description": name,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": dest,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                    "provisioningState": "Succeeded",
                },
            }
            for name, source, dest, access, priority, direction in _DEFAULT_RULES
        ]
        props["resourceGuid"] = (existing.props if existing else {}).get(
            "resourceGuid", str(uuid.uuid4())
        )
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        resource = Resource(ref.id, NSG, result)
        emu.store.put(resource)
        return emu.put_response(request, ref, resource, existing is None, None, None, "Updating")

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        users = [
            nic.id
            for nic in emu.store.of_type(NIC)
            if (ref_id(nic.props.get("networkSecurityGroup")) or "").lower() == resource.id.lower()
        ]
        for vnet in emu.store.of_type(VNET):
            for subnet in vnet.props.get("subnets", []):
                nsg_id = ref_id(subnet["properties"].get("networkSecurityGroup")) or ""
                if nsg_id.lower() == resource.id.lower():
                    users.append(subnet["id"])
        if users:
            raise errors.ArmError(
                400,
                "InUseNetworkSecurityGroupCannotBeDeleted",
                f"Network security group {resource.id} cannot be deleted because it is in use "
                f"by the following resources: {', '.join(users)}.",
            )


class PublicIpKind(Kind):
    type_name = PIP
    name_rule = naming.NETWORK
    uses_etag = True

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        sku = dict(body.get("sku") or {"name": "Standard"})
        sku.setdefault("tier", "Regional")
        result["sku"] = sku
        props = copy_json(body.get("properties", {}))
        default_method = "Static" if sku["name"].lower() == "standard" else "Dynamic"
        props.setdefault("publicIPAllocationMethod", default_method)
        props.setdefault("publicIPAddressVersion", "IPv4")
        props.setdefault("idleTimeoutInMinutes", 4)
        props.setdefault("ipTags", [])
        old = existing.props if existing else {}
        props.pop("ipAddress", None)
        props.pop("ipConfiguration", None)
        for managed in ("ipAddress", "ipConfiguration"):  # set by the platform, not the caller
            if managed in old:
                props[managed] = old[managed]
        props["resourceGuid"] = old.get("resourceGuid", str(uuid.uuid4()))
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        resource = Resource(ref.id, PIP, result)
        emu.store.put(resource)
        return emu.put_response(request, ref, resource, existing is None, None, None, "Updating")

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        config = ref_id(resource.props.get("ipConfiguration"))
        if config:
            raise errors.ArmError(  # RULES.md 1.2 (terraform-provider-azurerm#2566)
                400,
                "PublicIPAddressCannotBeDeleted",
                f"Public IP address {resource.id} can not be deleted since it is still allocated "
                f"to resource {config}. In order to delete the public IP, disassociate/detach "
                "the Public IP address from the resource.  To learn how to do this, see "
                "aka.ms/deletepublicip.",
            )


class NetworkInterfaceKind(Kind):
    type_name = NIC
    name_rule = naming.NETWORK
    uses_etag = True

    async def put(
        self, emu: Emulator, request: web.Request, ref: ResourceRef, body: dict[str, Any]
    ) -> web.Response:
        existing = emu.store.get(ref.id)
        result = self.base_body(ref, body, existing)
        props = copy_json(body.get("properties", {}))
        nsg_id = ref_id(props.get("networkSecurityGroup"))
        if nsg_id and emu.find(nsg_id, NSG) is None:
            raise errors.invalid_reference(nsg_id, ref.id)
        entries = props.get("ipConfigurations") or []
        if not entries:
            raise errors.invalid_parameter(
                f"Network interface {ref.id} must have one or more IP configurations.",
                "ipConfigurations",
            )
        configs: list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            name = entry.get("name", "")
            naming.NETWORK.check(name, f"{NIC}/ipConfigurations")
            config_id = f"{ref.id}/ipConfigurations/{name}"
            cprops = dict(entry.get("properties", {}))
            if configs and not ref_id(cprops.get("subnet")):
                # Secondary configurations share the primary one's subnet, as on Azure.
                cprops["subnet"] = dict(configs[0]["properties"]["subnet"])
            found = find_subnet(emu, ref_id(cprops.get("subnet")))
            if found is None:
                raise errors.invalid_reference(ref_id(cprops.get("subnet")) or "(none)", ref.id)
            pip_id = ref_id(cprops.get("publicIPAddress"))
            if pip_id:
                pip = emu.find(pip_id, PIP)
                if pip is None:
                    raise errors.invalid_reference(pip_id, ref.id)
                holder = ref_id(pip.props.get("ipConfiguration"))
                if holder and not holder.lower().startswith(ref.id.lower() + "/"):
                    raise errors.ArmError(
                        400,
                        "PublicIPAddressInUse",
                        f"Resource {pip_id} is in use by {holder} and cannot be used by "
                        f"{config_id}.",
                    )
            cprops.setdefault("privateIPAllocationMethod", "Dynamic")
            cprops.setdefault("privateIPAddressVersion", "IPv4")
            cprops.setdefault("primary", index == 0)
            cprops["privateIPAddress"] = (
                cprops.get("privateIPAddress")
                or _old_private_ip(existing, name)
                or _free_address(emu, found[1])
            )
            cprops["provisioningState"] = "Succeeded"
            configs.append(
                {
                    "name": name,
                    "id": config_id,
                    "etag": new_etag(),
                    "type": f"{NIC}/ipConfigurations",
                    "properties": cprops,
                }
            )
        old = existing.props if existing else {}
        if existing is not None:
            _detach_configs(emu, existing)
        props["ipConfigurations"] = configs
        for managed in ("virtualMachine", "macAddress", "primary"):
            if managed in old:
                props[managed] = old[managed]
        props.setdefault("dnsSettings", {"dnsServers": [], "appliedDnsServers": []})
        props.setdefault("enableAcceleratedNetworking", False)
        props.setdefault("enableIPForwarding", False)
        props.setdefault("nicType", "Standard")
        props["resourceGuid"] = old.get("resourceGuid", str(uuid.uuid4()))
        props["provisioningState"] = "Succeeded"
        result["properties"] = props
        resource = Resource(ref.id, NIC, result)
        emu.store.put(resource)
        _attach_configs(emu, resource)
        return emu.put_response(request, ref, resource, existing is None, None, None, "Updating")

    def check_delete(self, emu: Emulator, resource: Resource) -> None:
        vm_id = ref_id(resource.props.get("virtualMachine"))
        if vm_id:
            raise errors.ArmError(
                400,
                "NicInUse",
                f"Network Interface {resource.id} is used by existing resource {vm_id}. In "
                "order to delete the network interface, it must be dissociated from the "
                "resource. To learn more, see aka.ms/deletenic.",
            )

    async def remove(self, emu: Emulator, resource: Resource) -> None:
        remove_nic(emu, resource)


def remove_nic(emu: Emulator, nic: Resource) -> None:
    """Delete a NIC and release its subnet entries and public IPs."""
    _detach_configs(emu, nic)
    emu.store.delete(nic.id)


def nic_public_ips(emu: Emulator, nic: Resource) -> list[Resource]:
    found = []
    for config in nic.props.get("ipConfigurations", []):
        pip = emu.find(ref_id(config["properties"].get("publicIPAddress")), PIP)
        if pip is not None:
            found.append(pip)
    return found


def _attach_configs(emu: Emulator, nic: Resource) -> None:
    for config in nic.props["ipConfigurations"]:
        cprops = config["properties"]
        found = find_subnet(emu, ref_id(cprops.get("subnet")))
        if found is not None:
            found[1]["properties"].setdefault("ipConfigurations", []).append({"id": config["id"]})
        pip = emu.find(ref_id(cprops.get("publicIPAddress")), PIP)
        if pip is not None:
            pip.props["ipConfiguration"] = {"id": config["id"]}
    emu.store.touch()


def _detach_configs(emu: Emulator, nic: Resource) -> None:
    prefix = nic.id.lower() + "/"
    for config in nic.props.get("ipConfigurations", []):
        cprops = config["properties"]
        found = find_subnet(emu, ref_id(cprops.get("subnet")))
        if found is not None:
            sprops = found[1]["properties"]
            sprops["ipConfigurations"] = [
                c
                for c in sprops.get("ipConfigurations", [])
                if not c["id"].lower().startswith(prefix)
            ]
        pip = emu.find(ref_id(cprops.get("publicIPAddress")), PIP)
        if pip is not None and (ref_id(pip.props.get("ipConfiguration")) or "").lower().startswith(
            prefix
        ):
            pip.props.pop("ipConfiguration", None)
            pip.props.pop("ipAddress", None)
    emu.store.touch()


def _old_private_ip(existing: Resource | None, config_name: str) -> str | None:
    if existing is None:
        return None
    for config in existing.props.get("ipConfigurations", []):
        if config["name"].lower() == config_name.lower():
            return str(config["properties"].get("privateIPAddress") or "") or None
    return None


def _free_address(emu: Emulator, subnet: dict[str, Any]) -> str:
    """The next free address of the subnet; Azure keeps the first four for itself."""
    sprops = subnet["properties"]
    prefix = sprops.get("addressPrefix") or sprops["addressPrefixes"][0]
    network = ipaddress.IPv4Network(prefix, strict=False)
    used = set()
    for config in sprops.get("ipConfigurations", []):
        nic_id = config["id"].split("/ipConfigurations/")[0]
        nic = emu.find(nic_id, NIC)
        for entry in nic.props.get("ipConfigurations", []) if nic else []:
            used.add(entry["properties"].get("privateIPAddress"))
    for offset in range(4, network.num_addresses - 1):
        candidate = str(network.network_address + offset)
        if candidate not in used:
            return candidate
    raise errors.ArmError(
        400, "SubnetIsFull", f"Subnet {subnet['name']} has no free addresses left."
    )
