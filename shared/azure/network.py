"""The build's network: VNet and subnet, an NSG letting SSH in from the controller only, IP, NIC."""

from __future__ import annotations

from typing import Any

from azure.mgmt.network.models import (
    NetworkInterface,
    NetworkSecurityGroup,
    PublicIPAddress,
    VirtualNetwork,
)

from shared.azure.boundary import get_or_none
from shared.azure.clients import AzureClients
from shared.azure.lro import ensure
from shared.azure.naming import BuildNames, VmNames


def ensure_network(
    azure: AzureClients, names: BuildNames, tags: dict[str, str], source_cidr: str
) -> str | None:
    """Create (or find) the VNet, subnet and NSG of a build; returns the subnet id, or None
    while Resource Manager is still creating them (call again later)."""
    s = azure.settings
    net = azure.network
    nsg_body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "securityRules": [
                {
                    "name": "ssh-from-controller",
                    "properties": {
                        "priority": 100,
                        "direction": "Inbound",
                        "access": "Allow",
                        "protocol": "Tcp",
                        "sourceAddressPrefix": source_cidr,
                        "sourcePortRange": "*",
                        "destinationAddressPrefix": "*",
                        "destinationPortRange": "22",
                    },
                }
            ]
        },
    }
    nsg = ensure(
        f"network security group {names.nsg}",
        lambda: net.network_security_groups.get(s.resource_group, names.nsg),
        lambda: net.network_security_groups.begin_create_or_update(
            s.resource_group, names.nsg, NetworkSecurityGroup(nsg_body)
        ),
    )
    if nsg is None:
        return None
    vnet_body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.42.0.0/24"]},
            "subnets": [
                {
                    "name": names.subnet,
                    "properties": {
                        "addressPrefix": "10.42.0.0/26",
                        "networkSecurityGroup": {"id": nsg.id},
                    },
                }
            ],
        },
    }
    vnet = ensure(
        f"virtual network {names.vnet}",
        lambda: net.virtual_networks.get(s.resource_group, names.vnet),
        lambda: net.virtual_networks.begin_create_or_update(
            s.resource_group, names.vnet, VirtualNetwork(vnet_body)
        ),
    )
    if vnet is None:
        return None
    return str(vnet.properties.subnets[0].id)  # type: ignore[union-attr,index]


def ensure_vm_nic(
    azure: AzureClients, vm: VmNames, subnet_id: str, tags: dict[str, str]
) -> tuple[str, str] | None:
    """Create (or find) a VM's public IP and NIC; returns (nic id, public ip id), or None
    while Resource Manager is still creating them (call again later)."""
    s = azure.settings
    net = azure.network
    ip_body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "sku": {"name": "Standard"},
        "properties": {
            "publicIPAllocationMethod": "Static",
            "publicIPAddressVersion": "IPv4",
            "deleteOption": "Delete",
        },
    }
    ip = ensure(
        f"public IP {vm.public_ip}",
        lambda: net.public_ip_addresses.get(s.resource_group, vm.public_ip),
        lambda: net.public_ip_addresses.begin_create_or_update(
            s.resource_group, vm.public_ip, PublicIPAddress(ip_body)
        ),
    )
    if ip is None:
        return None
    nic_body: dict[str, Any] = {
        "location": s.location,
        "tags": tags,
        "properties": {
            "ipConfigurations": [
                {
                    "name": "ipconfig1",
                    "properties": {
                        "subnet": {"id": subnet_id},
                        "privateIPAllocationMethod": "Dynamic",
                        "publicIPAddress": {"id": ip.id},
                    },
                }
            ]
        },
    }
    nic = ensure(
        f"network interface {vm.nic}",
        lambda: net.network_interfaces.get(s.resource_group, vm.nic),
        lambda: net.network_interfaces.begin_create_or_update(
            s.resource_group, vm.nic, NetworkInterface(nic_body)
        ),
    )
    if nic is None:
        return None
    return str(nic.id), str(ip.id)


def public_ip_address(azure: AzureClients, vm: VmNames) -> str | None:
    """The address the VM answers on, or None while it has none (deallocated, not yet made)."""
    s = azure.settings
    ip = get_or_none(
        f"read public IP {vm.public_ip}",
        lambda: azure.network.public_ip_addresses.get(s.resource_group, vm.public_ip),
    )
    if ip is None or ip.properties is None:
        return None
    return ip.properties.ip_address or None
