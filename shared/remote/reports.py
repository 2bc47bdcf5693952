"""Reports the guest writes (run_notebooks.py's report.json), read as bounded models.

A guest is not trusted: anyone with the VM, or a notebook it runs, can write these files.
What arrives is validated here before anything is stored on the build or shown to a user:
strings are bounded, numbers finite and in range, and anything else is refused as a whole.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_REPORT_BYTES = 2 * 1024 * 1024
MAX_NOTEBOOKS = 1_000


class BadGuestReport(ValueError):
    """The guest's report is not what the script writes; the message says where."""


class GuestNotebookResult(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    status: Literal["ok", "failed", "timeout"]
    cell_index: int | None = Field(None, ge=0, le=1_000_000)
    ename: str | None = Field(None, max_length=200)
    evalue: str | None = Field(None, max_length=2_000)
    duration_s: float | None = Field(None, ge=0, le=10_000_000, allow_inf_nan=False)


class GuestNotebookReport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    notebooks: dict[str, GuestNotebookResult] = Field(default_factory=dict)


def parse_notebook_report(text: str) -> GuestNotebookReport:
    """report.json as written by run_notebooks.py; BadGuestReport for anything else."""
    if len(text) > MAX_REPORT_BYTES:
        raise BadGuestReport(f"the report is {len(text)} bytes; at most {MAX_REPORT_BYTES}")
    try:
        report = GuestNotebookReport.model_validate_json(text)
    except ValidationError as exc:
        raise BadGuestReport(f"the report is malformed ({_where(exc)})") from None
    except RecursionError:
        raise BadGuestReport("the report is nested too deeply") from None
    if len(report.notebooks) > MAX_NOTEBOOKS:
        raise BadGuestReport(f"the report names {len(report.notebooks)} notebooks")
    if any(not 0 < len(name) <= 1_024 for name in report.notebooks):
        raise BadGuestReport("the report names a notebook with an empty or overlong path")
    return report


def notebook_entries(report: GuestNotebookReport) -> list[dict[str, Any]]:
    """The report as the build stores it: [{name, status, cell, ename, evalue, duration_s}]."""
    return [
        {
            "name": name,
            "status": result.status,
            "cell": result.cell_index,
            "ename": result.ename,
            "evalue": result.evalue,
            "duration_s": result.duration_s,
        }
        for name, result in report.notebooks.items()
    ]


def _where(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "unreadable"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])[:120] or "report"
    return f"{where}: {first['type']}"
