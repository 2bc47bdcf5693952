"""The build logs API: which logs a build kept, and one of them (see shared/build_logs.py).

Only the build's owner or an administrator reads them; another owner's build answers 404, as
the builds API does.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import AzureError

from shared import build_logs
from shared.api.builds import ApiResponse, get
from shared.api.caller import Caller
from shared.runtime import Runtime

logger = logging.getLogger(__name__)


def _error(status: int, error: str, field: str, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": error, "problems": [{"field": field, "message": message}]})


def _unavailable(exc: AzureError) -> ApiResponse:
    logger.warning("build logs: Blob storage call failed: %s", type(exc).__name__)
    return _error(503, "unavailable", "", "Blob storage did not answer; try again")


def list_logs(rt: Runtime, build_id: str, caller: Caller) -> ApiResponse:
    """The entries stored for the build (none yet while its VMs still run)."""
    seen = get(rt, build_id, caller)  # the same 404 for a missing and another's build
    if seen.status != 200:
        return seen
    try:
        entries = build_logs.list_entries(rt.settings, rt.azure.credential, build_id)
    except AzureError as exc:
        return _unavailable(exc)
    return ApiResponse(
        200,
        {
            "id": build_id,
            "logs": [
                {"name": e.name, "bytes": e.bytes, "content_type": e.content_type} for e in entries
            ],
        },
    )


def get_log(rt: Runtime, build_id: str, job: str, caller: Caller) -> ApiResponse:
    """One entry's content (scrubbed when it was stored), as text or notebook JSON."""
    seen = get(rt, build_id, caller)
    if seen.status != 200:
        return seen
    try:
        entries = build_logs.list_entries(rt.settings, rt.azure.credential, build_id)
        entry = build_logs.resolve_entry(entries, job)
        if entry is None:
            names = ", ".join(e.name for e in entries) or "none yet"
            return _error(404, "not found", "job", f"build {build_id} has no log {job!r} ({names})")
        data = build_logs.read_entry(rt.settings, rt.azure.credential, build_id, entry.name)
    except AzureError as exc:
        return _unavailable(exc)
    return ApiResponse(200, data, content_type=entry.content_type)
