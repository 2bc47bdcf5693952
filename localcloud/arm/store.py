"""Resources in memory, indexed by lower-case id and by type, with a JSON snapshot on disk."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Resource:
    """One ARM resource: `body` is what ARM returns, `internal` is the emulator's own record."""

    id: str
    type: str  # canonical, e.g. Microsoft.Compute/virtualMachines
    body: dict[str, Any]
    internal: dict[str, Any] = field(default_factory=dict)

    @property
    def props(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.setdefault("properties", {})
        return props

    @property
    def name(self) -> str:
        return str(self.body["name"])


class Store:
    """Every resource group and resource of the emulator; a snapshot is written when dirty."""

    def __init__(self, snapshot_path: Path) -> None:
        self.snapshot_path = snapshot_path
        self._items: dict[str, Resource] = {}
        self._by_type: dict[str, dict[str, None]] = {}  # ordered sets of keys
        self.operations: dict[str, dict[str, Any]] = {}
        self.dirty = False

    # --- access -----------------------------------------------------------------------------
    def get(self, resource_id: str) -> Resource | None:
        return self._items.get(resource_id.lower())

    def put(self, resource: Resource) -> None:
        """Store `resource`; a replaced one hands on its createdTime ($expand=createdTime)."""
        key = resource.id.lower()
        old = self._items.get(key)
        now = _now_iso()
        created = old.internal.get("createdTime") if old is not None else None
        resource.internal.setdefault("createdTime", created or now)
        if old is not None:
            resource.internal["changedTime"] = now
        self._items[key] = resource
        self._by_type.setdefault(resource.type.lower(), {})[key] = None
        self.dirty = True

    def delete(self, resource_id: str) -> Resource | None:
        key = resource_id.lower()
        resource = self._items.pop(key, None)
        if resource is not None:
            self._by_type.get(resource.type.lower(), {}).pop(key, None)
            self.dirty = True
        return resource

    def of_type(self, type_name: str, prefix: str = "") -> Iterator[Resource]:
        """Resources of `type_name` whose id starts with `prefix` (case-insensitive)."""
        prefix = prefix.lower()
        for key in list(self._by_type.get(type_name.lower(), {})):
            if key.startswith(prefix):
                yield self._items[key]

    def under(self, prefix: str) -> list[Resource]:
        """Every resource whose id starts with `prefix` + '/' (children, group contents)."""
        start = prefix.lower() + "/"
        return [r for k, r in self._items.items() if k.startswith(start)]

    def touch(self) -> None:
        self.dirty = True

    # --- snapshot ---------------------------------------------------------------------------
    def save(self) -> None:
        """Write the snapshot atomically (temporary file, then rename)."""
        data = {
            "resources": [
                {"id": r.id, "type": r.type, "body": r.body, "internal": r.internal}
                for r in self._items.values()
            ],
            "operations": self.operations,
        }
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot_path.with_suffix(".tmp")
        # 0600: the snapshot may hold a VM's customData until its first boot.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.snapshot_path)
        self.dirty = False

    def load(self) -> None:
        if not self.snapshot_path.exists():
            return
        data = json.loads(self.snapshot_path.read_text())
        for item in data.get("resources", []):
            self.put(Resource(item["id"], item["type"], item["body"], item.get("internal", {})))
        self.operations = data.get("operations", {})
        self.dirty = False


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
