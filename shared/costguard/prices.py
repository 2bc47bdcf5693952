"""The price table shipped beside this module: approximate list prices, dated, with a source.

A size the table does not name has no price (None): callers report it as unknown, never zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("prices.json")
DEFAULT_OS_DISK_GB = 30  # the platform images' OS disk when the request does not set one


@dataclass(frozen=True)
class DiskTier:
    tier: str
    max_gb: int
    monthly: float


@dataclass(frozen=True)
class PriceTable:
    currency: str
    as_of: str
    source: str
    hours_per_month: float
    vm_hourly: dict[str, float]
    disk_tiers: tuple[DiskTier, ...]

    def vm_per_hour(self, size: str | None) -> float | None:
        """The hourly price of a VM size (case-insensitive), or None when the table lacks it."""
        if not size:
            return None
        lowered = {k.lower(): v for k, v in self.vm_hourly.items()}
        return lowered.get(size.lower())

    def disk_per_hour(self, size_gb: int) -> float | None:
        """A Premium SSD's hourly price: billed by the smallest tier that holds `size_gb`."""
        for tier in self.disk_tiers:
            if size_gb <= tier.max_gb:
                return tier.monthly / self.hours_per_month
        return None


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    data = json.loads(path.read_text())
    return PriceTable(
        currency=str(data["currency"]),
        as_of=str(data["as_of"]),
        source=str(data["source"]),
        hours_per_month=float(data["hours_per_month"]),
        vm_hourly={str(k): float(v) for k, v in data["vm_hourly"].items()},
        disk_tiers=tuple(
            DiskTier(str(t["tier"]), int(t["max_gb"]), float(t["monthly"]))
            for t in sorted(data["premium_ssd_monthly_by_tier"], key=lambda t: t["max_gb"])
        ),
    )


@cache
def default_prices() -> PriceTable:
    """The shipped table, read once per process."""
    return load_prices()
