"""Time zone names from outside (requests, VM tags): known IANA keys only, never an exception.

`zoneinfo.ZoneInfo` raises more than `ZoneInfoNotFoundError` for hostile names: a tzdata
folder such as `Europe` or `America/Indiana` raises `IsADirectoryError`, odd paths raise
`ValueError` or other `OSError`s. Names are therefore checked against the set of keys the
installed tz database offers before anything is opened.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache


@lru_cache(maxsize=1)
def known_zone_names() -> frozenset[str]:
    """Every IANA key this Python's tz database (system or the tzdata package) offers."""
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: object) -> zoneinfo.ZoneInfo | None:
    """The zone called `name`, or None when it is not a known IANA key (whatever it is)."""
    if not isinstance(name, str) or name not in known_zone_names():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:  # a key listed but unreadable: treat as unknown rather than fail the caller
        return None
