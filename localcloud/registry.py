"""The machine-wide list of localcloud state folders, so `down --all` can find every instance."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path


def registry_file() -> Path:
    """`LOCALCLOUD_REGISTRY` if set, else /run/labimage-localcloud/instances (tmp when not root)."""
    override = os.environ.get("LOCALCLOUD_REGISTRY")
    if override:
        return Path(override)
    base = Path("/run") if os.access("/run", os.W_OK) else Path(f"/tmp/localcloud-{os.getuid()}")
    return base / "labimage-localcloud" / "instances"


def _update(change: Callable[[list[str]], list[str]]) -> list[str]:
    path = registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        lines = [line.strip() for line in handle if line.strip()]
        updated = change(lines)
        handle.seek(0)
        handle.truncate()
        handle.write("".join(f"{line}\n" for line in updated))
        return updated


def register(state_dir: Path) -> None:
    entry = str(state_dir)
    _update(lambda lines: lines if entry in lines else [*lines, entry])


def unregister(state_dir: Path) -> None:
    entry = str(state_dir)
    _update(lambda lines: [line for line in lines if line != entry])


def registered() -> list[Path]:
    return [Path(line) for line in _update(lambda lines: lines)]
