"""The platform options of the ARM emulator, defined once for its own command line and for
`localcloud up`, which passes them on."""

from __future__ import annotations

import argparse
import os

from localcloud.arm.durations import DEFAULT_LRO_SCALE

SECURITY_TYPES = ("Standard", "TrustedLaunch")
DEFAULT_FIRST_BOOT_LOCK_S = 45.0


def add_platform_options(parser: argparse.ArgumentParser, *, for_up: bool = False) -> None:
    """--default-security-type, --first-boot-lock-seconds, --lro-scale and --lro-seconds.

    For `up` the help says so, the first-boot lock may come from LOCALCLOUD_FIRST_BOOT_LOCK_S,
    and --lro-scale has no default of its own (the emulator's applies)."""
    prefix = "up: " if for_up else ""
    lock = float(os.environ.get("LOCALCLOUD_FIRST_BOOT_LOCK_S") or DEFAULT_FIRST_BOOT_LOCK_S)
    parser.add_argument(
        "--default-security-type",
        choices=SECURITY_TYPES,
        default="Standard",
        help=f"{prefix}what a VM without securityProfile gets where image and size support it "
        "(Azure's platform default)",
    )
    parser.add_argument(
        "--first-boot-lock-seconds",
        type=float,
        default=lock if for_up else DEFAULT_FIRST_BOOT_LOCK_S,
        help=f"{prefix}how long a fresh VM's first-boot package job holds the dpkg lock "
        f"(default {DEFAULT_FIRST_BOOT_LOCK_S:.0f})",
    )
    parser.add_argument(
        "--lro-scale",
        type=float,
        default=None if for_up else DEFAULT_LRO_SCALE,
        help=f"{prefix}long-running operations take Azure's usual seconds times this "
        "(0: instant); see localcloud/arm/durations.py",
    )
    parser.add_argument(
        "--lro-seconds",
        action="append",
        default=[],
        metavar="TYPE=SECONDS",
        help=f"{prefix}exact duration for one resource type, e.g. "
        "Microsoft.Compute/virtualMachines=5 (repeatable)",
    )
