"""The tag linking an image (or gallery version) to its manifest."""

from __future__ import annotations

import re
from collections.abc import Mapping

MANIFEST_TAG = "labimage-manifest"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def manifest_tags(digest: str | None) -> dict[str, str]:
    """{labimage-manifest: <sha256>}, or nothing when the build has no manifest."""
    return {MANIFEST_TAG: digest} if digest else {}


def manifest_digest_from_tags(tags: Mapping[str, str] | None) -> str | None:
    """The manifest digest an image's tags name, None when they name none (or a malformed
    one: tags can be edited by anyone with write access to the image). Tag names are
    case-insensitive in Azure."""
    for name, value in (tags or {}).items():
        if name.lower() == MANIFEST_TAG and _DIGEST.fullmatch(value or ""):
            return value
    return None
