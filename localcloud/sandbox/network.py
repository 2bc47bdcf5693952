"""Host networking of the sandboxes: NAT table, forwarding switch, one netns + veth per VM."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from localcloud.sandbox.commands import run
from localcloud.sandbox.layout import Layout

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NFT_TABLE_FAMILY = "ip"
OUR_TABLE_PATTERN = re.compile(r"^table ip (labimage_lc_[0-9a-f]{6})$", re.MULTILINE)


def nat_ruleset(layout: Layout) -> str:
    """The whole nft table of this state folder (replaced atomically by `install_nat`).

    Outbound traffic of the VMs is masqueraded when it leaves through a non-veth interface.
    Connections opened by a VM to the host itself are refused: a VM reaches host services only
    through its relays on its own 127.0.0.1.
    """
    veths = f"{layout.veth_prefix}h*"
    return f"""
table {NFT_TABLE_FAMILY} {layout.nft_table} {{}}
delete table {NFT_TABLE_FAMILY} {layout.nft_table}
table {NFT_TABLE_FAMILY} {layout.nft_table} {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {layout.subnet} oifname != "{veths}" masquerade
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{veths}" ct state established,related accept
        iifname "{veths}" drop
    }}
}}
"""


def install_nat(layout: Layout) -> None:
    run(["nft", "-f", "-"], input_text=nat_ruleset(layout))


def remove_nat(layout: Layout) -> None:
    if layout.nft_table in our_tables():
        run(["nft", "delete", "table", NFT_TABLE_FAMILY, layout.nft_table])


def our_tables() -> list[str]:
    """Names of every labimage localcloud nft table on the machine (any state folder)."""
    return OUR_TABLE_PATTERN.findall(run(["nft", "list", "tables"]))


def enable_forwarding(layout: Layout) -> None:
    """Turn on IPv4 forwarding, remembering the value found the first time."""
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    if not layout.ip_forward_record.exists():
        layout.ip_forward_record.write_text(IP_FORWARD.read_text().strip() + "\n")
    IP_FORWARD.write_text("1\n")


def restore_forwarding(layout: Layout) -> None:
    """Put back the recorded forwarding value unless another localcloud still needs it."""
    record = layout.ip_forward_record
    if not record.exists():
        return
    if not [t for t in our_tables() if t != layout.nft_table]:
        IP_FORWARD.write_text(record.read_text().strip() + "\n")
    record.unlink()


def create_vm_network(layout: Layout, slot: int) -> str:
    """Create the VM's netns with `eth0` and a default route via the host; return the netns."""
    ns, host_if, guest_if = layout.netns(slot), layout.veth_host(slot), layout.veth_guest(slot)
    delete_vm_network(layout, slot)  # leftovers of a crashed run in this slot
    run(["ip", "netns", "add", ns])
    host_ip, guest_ip = layout.host_address(slot), layout.guest_address(slot)
    host_side = f"""
link add {host_if} type veth peer name {guest_if} netns {ns}
addr add {host_ip}/30 dev {host_if}
link set {host_if} up
"""
    guest_side = f"""
link set {guest_if} name eth0
addr add {guest_ip}/30 dev eth0
link set eth0 up
link set lo up
route add default via {host_ip}
"""
    run(["ip", "-batch", "-"], input_text=host_side)
    run(["ip", "-n", ns, "-batch", "-"], input_text=guest_side)
    return ns


def delete_vm_network(layout: Layout, slot: int) -> None:
    """Remove the VM's netns and veth pair if they exist."""
    delete_netns(layout.netns(slot))
    if Path(f"/sys/class/net/{layout.veth_host(slot)}").exists():
        run(["ip", "link", "del", layout.veth_host(slot)], check=False)


def delete_netns(name: str) -> None:
    if name in list_netns():
        run(["ip", "netns", "del", name], check=False)
    with contextlib.suppress(FileNotFoundError):
        Path("/run/netns", name).unlink()


def list_netns() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def our_netns(layout: Layout) -> list[str]:
    return [n for n in list_netns() if n.startswith(layout.netns_prefix)]


def our_veths(layout: Layout) -> list[str]:
    return [
        p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(layout.veth_prefix)
    ]
