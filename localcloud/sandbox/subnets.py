"""The address range of one localcloud instance's sandboxes, so two instances never share one.

The default state folder keeps 10.213.0.0/16 (what the docs show). Any other folder gets a /20
from POOL, the first free one starting at a place chosen by the folder's hash, skipping ranges
that another registered instance holds or that the machine already routes. The choice is
written to the folder (SUBNET_FILE) at `localcloud up` and reused by every later `up`, so an
instance's VMs keep their range across restarts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Iterable
from pathlib import Path

DEFAULT_SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
# 10.200.0.0-10.207.255.255: 128 ranges of /20 (1024 VM slots each), clear of the default.
POOL = ipaddress.IPv4Network("10.200.0.0/13")
PREFIX = 20
SUBNET_FILE = "sandbox-subnet"


def recorded_subnet(state_dir: Path) -> ipaddress.IPv4Network | None:
    """The range an earlier `up` chose for this folder, if any (an unreadable file is none)."""
    try:
        return ipaddress.IPv4Network((state_dir / SUBNET_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def routed_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 destinations the machine routes now (`ip -4 route`), the default route left out."""
    try:
        out = subprocess.run(
            ["ip", "-4", "route", "show", "table", "all"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unicast"):
            words = words[1:]
        if not words or words[0] == "default":
            continue
        try:
            found.append(ipaddress.IPv4Network(words[0], strict=False))
        except ValueError:
            continue
    return found


def choose_subnet(
    state_dir: Path, default_state_dir: Path, taken: Iterable[ipaddress.IPv4Network]
) -> ipaddress.IPv4Network:
    """Pure: the range for `state_dir`, overlapping none of `taken`. ValueError if none is free."""
    taken = list(taken)
    if state_dir.resolve() == default_state_dir.resolve():
        return DEFAULT_SUBNET
    candidates = list(POOL.subnets(new_prefix=PREFIX))
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).digest()
    start = int.from_bytes(digest[:4], "big") % len(candidates)
    for i in range(len(candidates)):
        candidate = candidates[(start + i) % len(candidates)]
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise ValueError(f"no free /{PREFIX} left in {POOL} for localcloud sandboxes")


def allocate_subnet(
    state_dir: Path, default_state_dir: Path, others: Iterable[Path]
) -> ipaddress.IPv4Network:
    """The folder's range: the recorded one while no other registered instance (`others`)
    holds it, else a new choice clear of the others' ranges and the machine's routes, recorded."""
    me = state_dir.resolve()
    taken = [s for o in others if o.resolve() != me and (s := recorded_subnet(o)) is not None]
    recorded = recorded_subnet(state_dir)
    if recorded is not None and not any(recorded.overlaps(t) for t in taken):
        return recorded
    if me != default_state_dir.resolve():
        taken.append(DEFAULT_SUBNET)  # the default instance may not be up, yet it owns it
    taken += routed_networks()  # the host's own networks, and any other sandboxes
    subnet = choose_subnet(state_dir, default_state_dir, taken)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / SUBNET_FILE).write_text(f"{subnet}\n")
    return subnet
