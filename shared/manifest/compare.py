"""What changed between two manifests: packages added, removed, upgraded; data changed;
commits moved. Ids and timestamps (document.VOLATILE_KEYS) are not compared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.version import InvalidVersion, Version

Change = dict[str, Any]  # {kind, name, change, before, after}


def _change(kind: str, name: str, change: str, before: Any, after: Any) -> Change:
    return {"kind": kind, "name": name, "change": change, "before": before, "after": after}


def _version_move(before: str, after: str) -> str:
    try:
        return "upgraded" if Version(after) > Version(before) else "downgraded"
    except InvalidVersion:
        return "changed"


def _keyed(items: Iterable[dict[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    return {"/".join(str(item.get(k, "")) for k in keys): item for item in items}


def _packages(kind: str, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Change]:
    old = {str(p.get("name", "")).lower(): p for p in a}
    new = {str(p.get("name", "")).lower(): p for p in b}
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None and after is not None:
            changes.append(_change(kind, after["name"], "added", None, after.get("version")))
        elif after is None and before is not None:
            changes.append(_change(kind, before["name"], "removed", before.get("version"), None))
        elif before is not None and after is not None:
            v1, v2 = str(before.get("version")), str(after.get("version"))
            if v1 != v2:
                move = _version_move(v1, v2) if kind == "python_package" else "changed"
                changes.append(_change(kind, after["name"], move, v1, v2))
            elif sorted(before.get("hashes") or []) != sorted(after.get("hashes") or []):
                changes.append(_change(kind, after["name"], "hashes changed", v1, v2))
    return changes


def _blobs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Change]:
    def flat(sources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            f"{source.get('container')}/{blob.get('name')}": blob
            for source in sources
            for blob in source.get("blobs") or []
        }

    old, new = flat(a), flat(b)
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None:
            changes.append(_change("data_blob", name, "added", None, after))
        elif after is None:
            changes.append(_change("data_blob", name, "removed", before, None))
        elif any(before.get(k) != after.get(k) for k in ("size", "md5", "sha256")):
            changes.append(_change("data_blob", name, "changed", before, after))
    return changes


def _repositories(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Change]:
    old, new = _keyed(a, "url", "destination"), _keyed(b, "url", "destination")
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        name = (after or before or {}).get("url", key)
        if before is None or after is None:
            change = "added" if before is None else "removed"
            changes.append(
                _change(
                    "repository",
                    name,
                    change,
                    (before or {}).get("commit"),
                    (after or {}).get("commit"),
                )
            )
        elif before.get("commit") != after.get("commit"):
            changes.append(_change("repository", name, "moved", before["commit"], after["commit"]))
    return changes


def _notebooks(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Change]:
    old, new = _keyed(a, "name"), _keyed(b, "name")
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None or after is None:
            change = "added" if before is None else "removed"
            changes.append(_change("notebook", name, change, before, after))
        elif before != after:
            changes.append(_change("notebook", name, "outputs changed", before, after))
    return changes


SCALARS = ("base_image", "vm_size", "python", "labimage_version", "conda_explicit_sha256")


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    """Every difference from manifest `a` to manifest `b`, environment facts only."""
    changes = [
        _change(key, key, "changed", a.get(key), b.get(key))
        for key in SCALARS
        if a.get(key) != b.get(key)
    ]
    changes += _packages(
        "python_package", a.get("python_packages", []), b.get("python_packages", [])
    )
    changes += _packages("os_package", a.get("os_packages", []), b.get("os_packages", []))
    changes += _blobs(a.get("data", []), b.get("data", []))
    changes += _repositories(a.get("repositories", []), b.get("repositories", []))
    changes += _notebooks(a.get("notebooks", []), b.get("notebooks", []))
    return changes


def summary(changes: list[Change]) -> dict[str, int]:
    """How many changes of each kind and sort: {'python_package upgraded': 2, ...}."""
    counts: dict[str, int] = {}
    for change in changes:
        key = f"{change['kind']} {change['change']}"
        counts[key] = counts.get(key, 0) + 1
    return counts
