"""Azure's naming rules, as checks that explain what is wrong in one sentence.

Each check takes the value and returns it unchanged or raises ValueError with a message a person can
act on. The regular expressions are exported too, so the OpenAPI document can show them.
"""

from __future__ import annotations

import re

BUILD_NAME_PATTERN = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
VM_SIZE_PATTERN = r"^(Standard|Basic)_[A-Za-z0-9]+([_-][A-Za-z0-9]+)*$"
ADMIN_USERNAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
CONTAINER_NAME_PATTERN = r"^[a-z0-9](?!.*--)[a-z0-9-]*[a-z0-9]$"
IMAGE_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9_])?$"
GALLERY_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._]*[A-Za-z0-9])?$"
GALLERY_DEFINITION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
GALLERY_VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+$"
MARKETPLACE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
IMAGE_VERSION_PATTERN = r"^(latest|[0-9]+\.[0-9]+\.[0-9]+)$"
_SIZE_VERSION = re.compile(r"_v(\d+)$", re.IGNORECASE)
_SIZE_PARTS = re.compile(r"^standard_([a-z]+)\d+([a-z-]*?)(?:_v\d+)?$", re.IGNORECASE)

# Tag characters Azure refuses in tag names, and name prefixes it keeps for itself.
TAG_NAME_FORBIDDEN_CHARS = "<>%&\\?/"
AZURE_RESERVED_TAG_PREFIXES = ("microsoft", "azure", "windows")
MAX_TAG_NAME_CHARS = 512
MAX_TAG_VALUE_CHARS = 256

# Names Azure refuses as the admin user of a Linux VM, plus the accounts an Ubuntu image already
# has (cloud-init would fail to create them, or worse, hand the build key to a system account).
RESERVED_ADMIN_USERNAMES = frozenset(
    {
        # refused by Azure
        "1", "123", "a", "actuser", "adm", "admin", "admin1", "admin2", "administrator",
        "aspnet", "backup", "console", "david", "guest", "john", "owner", "root", "server",
        "sql", "support", "support_388945a0", "sys", "test", "test1", "test2", "test3",
        "user", "user1", "user2", "user3", "user4", "user5",
        # already present on Ubuntu images
        "bin", "daemon", "games", "gnats", "irc", "list", "lp", "mail", "man", "messagebus",
        "news", "nobody", "polkitd", "proxy", "sshd", "sync", "syslog", "tcpdump", "tss",
        "uucp", "uuidd", "www-data", "landscape", "lxd", "pollinate", "fwupd-refresh",
        "dnsmasq", "_apt", "ubuntu",
    }
)  # fmt: skip
RESERVED_ADMIN_USERNAME_PREFIXES = ("systemd-",)


def check_build_name(value: str) -> str:
    """A build name: 1-40 lowercase letters, digits and hyphens, starting with a letter."""
    if not re.fullmatch(BUILD_NAME_PATTERN, value):
        raise ValueError(
            "use lowercase letters, digits and hyphens, starting with a letter and ending with "
            "a letter or digit (for example 'ooi-jupyter')"
        )
    return value


def check_vm_size(value: str) -> str:
    """An Azure VM size name such as Standard_D2s_v5 (whether it exists is Azure's call)."""
    if not re.fullmatch(VM_SIZE_PATTERN, value):
        raise ValueError(
            f"'{value}' is not an Azure VM size name; sizes look like 'Standard_D2s_v5' "
            "or 'Standard_E4-2ds_v5'"
        )
    return value


def check_admin_username(value: str) -> str:
    """A Linux admin user name Azure accepts and that does not clash with an image account."""
    if not re.fullmatch(ADMIN_USERNAME_PATTERN, value):
        raise ValueError(
            "start with a lowercase letter and use only lowercase letters, digits, '_' and '-'"
        )
    if value in RESERVED_ADMIN_USERNAMES or value.startswith(RESERVED_ADMIN_USERNAME_PREFIXES):
        raise ValueError(
            f"'{value}' is reserved (Azure refuses it or the image already has that account); "
            "pick another name such as 'azureuser'"
        )
    return value


def check_container_name(value: str) -> str:
    """A Blob container name: 3-63 lowercase letters, digits, single hyphens, alnum at both ends."""
    if "--" in value:
        raise ValueError("container names cannot contain two hyphens in a row")
    if not re.fullmatch(CONTAINER_NAME_PATTERN, value):
        raise ValueError(
            "container names use lowercase letters, digits and hyphens, and start and end "
            "with a letter or digit"
        )
    return value


def check_image_name(value: str) -> str:
    """A managed image name: letters, digits, '.', '_', '-'; alnum first, alnum or '_' last."""
    if not re.fullmatch(IMAGE_NAME_PATTERN, value):
        raise ValueError(
            "image names use letters, digits, '.', '_' and '-', start with a letter or digit, "
            "and end with a letter, digit or '_'"
        )
    return value


def check_gallery_name(value: str) -> str:
    """A Compute Gallery name: letters, digits, '.' and '_' (no hyphens), alnum at both ends."""
    if not re.fullmatch(GALLERY_NAME_PATTERN, value):
        raise ValueError(
            "gallery names use letters, digits, '.' and '_' (no hyphens), and start and end "
            "with a letter or digit"
        )
    return value


def check_gallery_definition(value: str) -> str:
    """A gallery image definition name: letters, digits, '.', '_', '-'; alnum at both ends."""
    if not re.fullmatch(GALLERY_DEFINITION_PATTERN, value):
        raise ValueError(
            "image definition names use letters, digits, '.', '_' and '-', and start and end "
            "with a letter or digit"
        )
    return value


def check_gallery_version(value: str) -> str:
    """A gallery image version: three whole numbers, each fitting in 32 bits."""
    if not re.fullmatch(GALLERY_VERSION_PATTERN, value) or any(
        int(part) > 2**31 - 1 for part in value.split(".")
    ):
        raise ValueError("use three whole numbers separated by dots, for example '1.0.0'")
    return value


def check_marketplace_name(value: str) -> str:
    """A marketplace publisher, offer or SKU name."""
    if not re.fullmatch(MARKETPLACE_NAME_PATTERN, value):
        raise ValueError("use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return value


def check_image_version(value: str) -> str:
    """A marketplace image version: 'latest' or three dotted numbers."""
    if not re.fullmatch(IMAGE_VERSION_PATTERN, value):
        raise ValueError("use 'latest' or a version such as '24.04.202409120'")
    return value


def tag_name_problem(name: str) -> str | None:
    """Why Azure would refuse this tag name, or None if it would accept it."""
    if not name.strip():
        return "tag names cannot be empty"
    if len(name) > MAX_TAG_NAME_CHARS:
        return f"tag name '{name[:40]}...' is longer than {MAX_TAG_NAME_CHARS} characters"
    bad = sorted({c for c in name if c in TAG_NAME_FORBIDDEN_CHARS})
    if bad:
        return (
            f"tag name '{name}' contains {' '.join(bad)}, which Azure does not allow in tag names"
        )
    if any(not c.isprintable() for c in name):
        return f"tag name {name!r} contains control characters"
    if name.lower().startswith(AZURE_RESERVED_TAG_PREFIXES):
        return f"tag name '{name}' starts with a prefix Azure reserves (microsoft, azure, windows)"
    return None


def tag_value_problem(name: str, value: str) -> str | None:
    """Why Azure would refuse this tag value, or None if it would accept it."""
    if len(value) > MAX_TAG_VALUE_CHARS:
        return f"the value of tag '{name}' is longer than {MAX_TAG_VALUE_CHARS} characters"
    if any(not c.isprintable() for c in value):
        return f"the value of tag '{name}' contains control characters"
    return None


def nvme_only(size: str) -> bool:
    """Sizes v6 and newer boot only from images marked for NVMe ("Da/Ea/Fav6 and newer
    typically support only the NVMe storage interface", Azure's nvme-overview.md); a managed
    image cannot be marked, so it starts v5 and older sizes only."""
    found = _SIZE_VERSION.search(size)
    return found is not None and int(found.group(1)) >= 6


NVME_MANAGED_IMAGE = (
    "sizes v6 and newer boot only from images marked for NVMe, and a managed image cannot be marked"
)


def premium_storage(size: str) -> bool:
    """The size takes Premium SSD disks: "s: Premium Storage capable" in Azure's VM naming
    conventions (DS and GS are the older series' names for it). A name of another shape is
    taken as capable, and Azure has the last word."""
    parts = _SIZE_PARTS.match(size)
    if parts is None:
        return True
    family, features = parts.group(1).lower(), parts.group(2).lower()
    return "s" in features or family in ("ds", "gs")
