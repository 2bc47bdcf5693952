"""What one line of a rebuild's lock may hold: a package name (PEP 508), an exact version
(PEP 440) and sha256 hashes. The guest reports these, so they are checked when its report is
read and again before a lock line is written: anything else could add lines of its own
(`--extra-index-url`, a direct URL) to what `uv pip install -r` reads."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def name_problem(name: str) -> str | None:
    if _NAME.fullmatch(name):
        return None
    return f"{name[:80]!r} is not a package name (PEP 508)"


def version_problem(version: str) -> str | None:
    # Version() allows surrounding spaces; a lock line must not have any.
    if version == version.strip():
        try:
            Version(version)
            return None
        except InvalidVersion:
            pass
    return f"{version[:80]!r} is not a version (PEP 440)"


def hash_problem(value: str) -> str | None:
    if _HASH.fullmatch(value):
        return None
    return f"{value[:80]!r} is not a hash of the form sha256:<64 hex digits>"
