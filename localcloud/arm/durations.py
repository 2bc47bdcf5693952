"""How long Resource Manager's long-running operations take, per resource type.

Azure publishes no figures for these; the orders of magnitude below are what ARM clients are
built around: network writes finish in seconds (the Network RP answers 201 with an
Azure-AsyncOperation that is usually done on the first poll or two), a VM create or power action
takes tens of seconds (Packer's and Terraform's VM timeouts are counted in minutes, the Python
SDK polls every 30 s by default), a managed image about a minute, and a Compute Gallery image
version minutes, since it copies and replicates the disks (azure-docs' gallery pages speak of
replication "taking time"; Packer's default polling limit for it is 15 min).

The emulator waits `seconds x scale` before an operation of that type may finish, so the
client sees InProgress first (and a `poller.result(timeout=...)` can return before the end).
Scale 0 (the default) keeps tests instant; `localcloud up --lro-scale 0.02` keeps a whole build
quick while every long-running path still shows.
"""

from __future__ import annotations

from collections.abc import Mapping

# What `localcloud up` uses unless told: 0 (instant). 0.02 (a VM about a second, a gallery
# version a dozen) passes the build e2e tests, but the idle-stop e2e test then fails (the second
# idle run finds no Jupyter record on either kept VM); until that is understood durations are
# opt-in: `up --lro-scale 0.02`.
DEFAULT_LRO_SCALE = 0.0

# Real-Azure orders of magnitude, in seconds, by lower-case resource type.
REAL_AZURE_SECONDS: Mapping[str, float] = {
    "microsoft.network/networksecuritygroups": 5,
    "microsoft.network/virtualnetworks": 5,
    "microsoft.network/virtualnetworks/subnets": 5,
    "microsoft.network/publicipaddresses": 5,
    "microsoft.network/networkinterfaces": 5,
    "microsoft.compute/disks": 10,
    "microsoft.compute/virtualmachines": 45,
    "microsoft.compute/images": 60,
    "microsoft.compute/galleries": 10,
    "microsoft.compute/galleries/images": 10,
    "microsoft.compute/galleries/images/versions": 600,
}


def operation_seconds(
    type_name: str, scale: float, overrides: Mapping[str, float] | None = None
) -> float:
    """The least time an operation on `type_name` takes: an override as given, else the real
    figure times `scale`; 0 for types without a figure."""
    key = type_name.lower()
    if overrides and key in overrides:
        return max(0.0, float(overrides[key]))
    return max(0.0, REAL_AZURE_SECONDS.get(key, 0.0) * scale)


def parse_override(text: str) -> tuple[str, float]:
    """`Microsoft.Network/virtualNetworks=2.5` as (lower-case type, seconds)."""
    type_name, sep, seconds = text.partition("=")
    if not sep or "/" not in type_name:
        raise ValueError(f"want TYPE=SECONDS (Microsoft.Compute/disks=3), not {text!r}")
    value = float(seconds)
    if value < 0:
        raise ValueError(f"seconds must not be negative in {text!r}")
    return type_name.strip().lower(), value
