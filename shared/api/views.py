"""From the stored build record to what the API shows (no secrets are in either)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from shared.costguard.costs import build_cost
from shared.costguard.prices import default_prices
from shared.models.status import (
    BuildStatus,
    BuildSummary,
    Connection,
    NotebookResult,
    ResourceRef,
    VerificationReport,
)
from shared.state.machine import PIPELINE, Stage
from shared.state.record import Build, utcnow

_NOTEBOOK_STATUS: dict[str, Any] = {
    "ok": "passed",
    "passed": "passed",
    "failed": "failed",
    "timeout": "timed_out",
}


def build_status(build: Build, now: datetime | None = None) -> BuildStatus:
    stages = []
    for stage in (*PIPELINE, Stage.CLEANUP):
        record = build.stages.get(stage.value)
        if record is None:
            continue
        stages.append(
            {
                "name": stage.value,
                "state": record.state,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "attempts": record.attempts + record.polls + 1,
                "last_error": record.last_error,
            }
        )
    outputs = build.outputs
    reports = [
        _report(vm, outputs[key])
        for vm, key in (("build", "verification"), ("relaunch", "relaunch_verification"))
        if key in outputs
    ]
    connection = outputs.get("connection")
    return BuildStatus.model_validate(
        {
            "id": build.id,
            "name": build.request.get("name", ""),
            "state": build.state.value,
            "stage": build.stage.value,
            "created_at": build.created_at,
            "updated_at": build.updated_at,
            "stages": stages,
            "events": [e.model_dump() for e in build.events],
            "resources": [ResourceRef(type=r.type, id=r.id) for r in build.resources],
            "image_id": outputs.get("image_id"),
            "gallery_image_version_id": outputs.get("gallery_image_version_id"),
            "security": outputs.get("security"),
            "verification": reports,
            "connection": Connection.model_validate(
                {k: connection[k] for k in Connection.model_fields if k in connection}
            )
            if connection
            else None,
            "error": build.error,
            "cost": build_cost(build, default_prices(), now or utcnow()),
            "manifest": manifest_link((outputs.get("manifest") or {}).get("sha256")),
            "rebuild": outputs.get("rebuild"),
        }
    )


def manifest_link(digest: str | None) -> dict[str, str] | None:
    if not digest:
        return None
    url = f"/api/manifests/{digest}"
    return {"sha256": digest, "url": url, "sbom_url": f"{url}/sbom"}


def build_summary(build: Build) -> BuildSummary:
    return BuildSummary(
        id=build.id,
        name=build.request.get("name", ""),
        owner=build.request.get("owner", ""),
        project=build.request.get("project", ""),
        state=build.state.value,
        stage=build.stage.value,
        created_at=build.created_at,
        updated_at=build.updated_at,
    )


def _report(vm: str, report: dict[str, Any]) -> VerificationReport:
    notebooks = []
    for nb in report.get("notebooks", []):
        error = None
        if nb.get("ename") or nb.get("evalue"):
            cell = f"cell {nb.get('cell')}: " if nb.get("cell") is not None else ""
            error = f"{cell}{nb.get('ename', '')}: {nb.get('evalue', '')}"[:2000]
        notebooks.append(
            NotebookResult(
                name=str(nb.get("name", "?"))[:1024],
                status=_NOTEBOOK_STATUS.get(str(nb.get("status")), "failed"),
                duration_s=_duration(nb.get("duration_s")),
                error=error or (str(nb["error"])[:2000] if nb.get("error") else None),
            )
        )
    return VerificationReport(
        vm=vm, jupyter_ok=report.get("jupyter") == "answered", notebooks=notebooks
    )


def _duration(value: Any) -> float | None:
    """A stored run time shown only when it is a sane number (records predate validation)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= 10_000_000 else None
