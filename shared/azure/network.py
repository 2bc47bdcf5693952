"""The build's network: VNet and subnet, an NSG letting SSH in from the controller only, IP, NIC."""

from __future__ import annotations

from typing import Any

from azure.mgmt.network.models import (
    NetworkInterface,
    NetworkSecurityGroup,
    PublicIPAddress,
    VirtualNetwork,
)

from shared.azure.boundary import arm_call, get_or_none
from shared.azure.clients import AzureClients
from shared.azure.naming import BuildNames, VmNames

LRO_WAIT_S = 50  # one invocation never waits much longer than this on Resource Manager


def ensure_network(
    azure: AzureClients, names: BuildNames, tags: dict[str, str], source_cidr: str
) -> str:
    """Create (or find) the VNet, subnet and NSG of a build; returns the subnet id."""
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
    with arm_call(f"create network security group {names.nsg}"):
        nsg = net.network_security_groups.begin_create_or_update(
            s.resource_group, names.nsg, NetworkSecurityGroup(nsg_body)
        ).result(timeout=LRO_WAIT_S)
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
    with arm_call(f"create virtual network {names.vnet}"):
        vnet = net.virtual_networks.begin_create_or_update(
            s.resource_group, names.vnet, VirtualNetwork(vnet_body)
        ).result(timeout=LRO_WAIT_S)
    return str(vnet.properties.subnets[0].id)  # type: ignore[union-attr,index]


def ensure_vm_nic(
    azure: AzureClients, vm: VmNames, subnet_id: str, tags: dict[str, str]
) -> tuple[str, str]:
    """Create (or find) a VM's public IP and NIC; returns (nic id, public ip id)."""
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
    with arm_call(f"create public IP {vm.public_ip}"):
        ip = net.public_ip_addresses.begin_create_or_update(
            s.resource_group, vm.public_ip, PublicIPAddress(ip_body)
        ).result(timeout=LRO_WAIT_S)
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
    with arm_call(f"create network interface {vm.nic}"):
        nic = net.network_interfaces.begin_create_or_update(
            s.resource_group, vm.nic, NetworkInterface(nic_body)
        ).result(timeout=LRO_WAIT_S)
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
