"""Azure's naming rules for the resource types the emulator serves."""

from __future__ import annotations

import re
from dataclasses import dataclass

from localcloud.arm.errors import ArmError, invalid_parameter


@dataclass(frozen=True)
class NameRule:
    min_len: int
    max_len: int
    pattern: str  # full-match regular expression
    description: str

    def check(self, name: str, type_name: str) -> None:
        """Raise ARM's InvalidResourceName when `name` breaks the rule."""
        if not (self.min_len <= len(name) <= self.max_len) or not re.fullmatch(self.pattern, name):
            raise ArmError(
                400,
                "InvalidResourceName",
                f"Resource name {name} is invalid for type {type_name}. {self.description}",
            )


# Network resources: start with a word character, end with a word character or '_'.
NETWORK = NameRule(
    1,
    80,
    r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?",
    "The name can be up to 80 characters long. It must begin with a word character, and it "
    "must end with a word character or with '_'. The name may contain word characters or "
    "'.', '-', '_'.",
)
VIRTUAL_NETWORK = NameRule(2, 64, NETWORK.pattern, NETWORK.description.replace("80", "64"))
# Linux VM resource names: no spaces or \/"[]:|<>+=;,?*@&, not starting with '_',
# not ending with '.' or '-'.
VIRTUAL_MACHINE = NameRule(
    1,
    64,
    r"(?!_)[^\s\\/\"\[\]:|<>+=;,?*@&]*[^\s\\/\"\[\]:|<>+=;,?*@&.\-]",
    "The name can be 1 to 64 characters long, cannot contain whitespace or the characters "
    "\\/\"[]:|<>+=;,?*@&, cannot begin with '_' and cannot end with '.' or '-'.",
)
COMPUTE = NameRule(
    1,
    80,
    r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?",
    "The name can be up to 80 characters long, must begin with a letter or number, end with "
    "a letter, number or '_', and may contain letters, numbers, '_', '.' and '-'.",
)
GALLERY = NameRule(
    1,
    80,
    r"[A-Za-z0-9](?:[A-Za-z0-9_.]*[A-Za-z0-9])?",
    "Gallery names may contain letters, numbers, '_' and '.', up to 80 characters, and must "
    "begin and end with a letter or number.",
)
GALLERY_IMAGE = NameRule(
    1,
    80,
    r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?",
    "Gallery image names may contain letters, numbers, '_', '-' and '.', up to 80 characters, "
    "and must begin and end with a letter or number.",
)
RESOURCE_GROUP = NameRule(
    1,
    90,
    r"[-\w._()]*[-\w_()]",
    "Resource group names may contain letters, numbers, '_', '-', '.', '(' and ')', up to 90 "
    "characters, and cannot end with '.'.",
)

_LINUX_HOST_FORBIDDEN = set("~!@#$%^&*()=+_[]{}\\|;:'\",<>/?")


def check_gallery_version(name: str) -> None:
    """Gallery image versions are Major.Minor.Patch with 32-bit integers."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", name)
    if not match or any(int(g) > 2**31 - 1 for g in match.groups()):
        raise invalid_parameter(
            f"The gallery image version name '{name}' is invalid. The version name should "
            "follow the format <MajorVersion>.<MinorVersion>.<Patch> with 32-bit integers.",
            "galleryImageVersionName",
        )


def check_linux_computer_name(name: str) -> None:
    """osProfile.computerName for Linux: 1-64 characters, no specials, not all digits."""
    if (
        not 1 <= len(name) <= 64
        or any(c in _LINUX_HOST_FORBIDDEN or c.isspace() for c in name)
        or name.isdigit()
        or name.startswith("-")
        or name.endswith((".", "-"))
    ):
        raise invalid_parameter(
            "Linux host name cannot exceed 64 characters in length or contain the following "
            "characters: ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : ' \" , < > / ?.",
            "computerName",
        )
