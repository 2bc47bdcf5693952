"""What the install step takes from the manifest a build repeats (request.reproduce)."""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentError
from shared.manifest.rebuild import UnsafeLockEntry, locked_requirements, pinned_blobs
from shared.manifest.store import load_manifest
from shared.steps.base import StepContext


def reproduced_lock(ctx: StepContext) -> dict[str, Any]:
    """install_python's lock arguments for a rebuild; nothing for a plain build."""
    reproduce = ctx.request.reproduce
    if reproduce is None:
        return {}
    manifest = load_manifest(ctx.settings, ctx.azure.credential, reproduce.from_manifest)
    try:
        lock, hashed = locked_requirements(manifest)
    except UnsafeLockEntry as exc:
        raise PermanentError(
            f"manifest {reproduce.from_manifest} cannot be installed from: {exc}"
        ) from None
    return {"lock": lock, "require_hashes": hashed}


def reproduced_blobs(ctx: StepContext, index: int) -> list[dict[str, str]] | None:
    """For an exact-data rebuild, data source `index`'s blobs with the sha256 the pull must
    find (a blob rewritten after the rebuild was accepted fails the pull, naming it)."""
    reproduce = ctx.request.reproduce
    if reproduce is None or reproduce.data != "exact":
        return None
    manifest = load_manifest(ctx.settings, ctx.azure.credential, reproduce.from_manifest)
    return pinned_blobs(manifest, index) or None
