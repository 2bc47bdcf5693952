"""The Functions host's keys, and the authorization level check every HTTP request passes.

As on Azure: a route at level `anonymous` needs no key; `function` takes any function key or the
master key, from the `x-functions-key` header or the `code` query parameter; `admin` (and the
host's /admin endpoints) only the master key. A missing or wrong key gets 401 with no body.
The keys are made once per state folder (mode 0600), where a test or the operator reads them,
as one reads them from the portal or `az functionapp keys list` on Azure.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "host-keys.json"


@dataclass(frozen=True)
class HostKeys:
    master: str
    function_keys: tuple[str, ...]

    @classmethod
    def in_folder(cls, folder: Path) -> HostKeys:
        """The keys recorded in `folder`, made (0600) on first use."""
        path = folder / KEYS_FILE
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = {
                "masterKey": secrets.token_urlsafe(40),
                "functionKeys": {"default": secrets.token_urlsafe(40)},
            }
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
        data = json.loads(path.read_text())
        return cls(str(data["masterKey"]), tuple(str(k) for k in data["functionKeys"].values()))

    def allows(self, level: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        """True when the request carries a key good enough for `level`."""
        level = level.lower()
        if level == "anonymous":
            return True
        supplied = headers.get("x-functions-key") or query.get("code") or ""
        accepted = [self.master] if level in ("admin", "system") else [*self.function_keys]
        if level not in ("admin", "system"):
            accepted.append(self.master)
        return any(hmac.compare_digest(supplied.encode(), key.encode()) for key in accepted)


def read_host_keys(folder: Path) -> dict[str, str]:
    """{"master": ..., "default": ...} of a running host's key folder (for tests and tools)."""
    data = json.loads((folder / KEYS_FILE).read_text())
    return {"master": str(data["masterKey"]), "default": str(data["functionKeys"]["default"])}
