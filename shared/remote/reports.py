"""Reports the guest writes (run_notebooks.py's report.json), read as bounded models.

A guest is not trusted: anyone with the VM, or a notebook it runs, can write these files.
What arrives is validated here before anything is stored on the build or shown to a user:
strings are bounded, numbers finite and in range, and anything else is refused as a whole.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_REPORT_BYTES = 2 * 1024 * 1024
MAX_NOTEBOOKS = 1_000
MAX_DATA_FILES = 200_000
MAX_MANIFEST_BYTES = 128 * 1024 * 1024


_M = TypeVar("_M", bound="BaseModel")


class BadGuestReport(ValueError):
    """The guest's report is not what the script writes; the message says where."""


class GuestNotebookResult(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    status: Literal["ok", "failed", "timeout"]
    cell_index: int | None = Field(None, ge=0, le=1_000_000)
    ename: str | None = Field(None, max_length=200)
    evalue: str | None = Field(None, max_length=2_000)
    duration_s: float | None = Field(None, ge=0, le=10_000_000, allow_inf_nan=False)
    outputs_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class GuestNotebookReport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    notebooks: dict[str, GuestNotebookResult] = Field(default_factory=dict)


class PulledFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    blob: str = Field(min_length=1, max_length=1_024)
    path: str = Field(min_length=1, max_length=4_096)
    size: int = Field(ge=0, le=2**50)
    md5: str | None = Field(None, pattern=r"^[A-Za-z0-9+/]{22}==$")  # base64, as Blob storage
    md5_verified: bool = False
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    etag: str | None = Field(None, max_length=200)


class DataManifest(BaseModel):
    """pull_data.py's manifest.json: every file it wrote, with its size and digests."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    destination: str = Field(min_length=1, max_length=1_024)
    files: list[PulledFile] = Field(max_length=MAX_DATA_FILES)
    total_bytes: int = Field(ge=0)


class InstalledPackage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    package: str = Field(max_length=200)
    version: str | None = Field(None, max_length=100)
    module: str | None = Field(None, max_length=200)
    ok: bool
    error: str | None = Field(None, max_length=2_000)


class InstallReport(BaseModel):
    """install_python.sh's report.json: what was installed and whether each package imports."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    python: str = Field(max_length=1_024)
    python_version: str = Field(max_length=40)
    installer: str = Field(max_length=40)
    packages: list[InstalledPackage] = Field(default_factory=list, max_length=2_000)
    failed: list[str] = Field(default_factory=list, max_length=2_000)


def parse_guest_json(
    model: type[_M], text: str, what: str, max_bytes: int = MAX_MANIFEST_BYTES
) -> _M:
    """`text` (a guest file or output) as `model`; BadGuestReport saying what is wrong
    otherwise: too long, not JSON, nested too deeply, or not the model's shape and bounds."""
    if len(text) > max_bytes:
        raise BadGuestReport(f"the {what} is {len(text)} bytes; at most {max_bytes}")
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise BadGuestReport(f"the {what} is malformed ({_where(exc)})") from None
    except RecursionError:
        raise BadGuestReport(f"the {what} is nested too deeply") from None


def parse_notebook_report(text: str) -> GuestNotebookReport:
    """report.json as written by run_notebooks.py; BadGuestReport for anything else."""
    report = parse_guest_json(GuestNotebookReport, text, "report", MAX_REPORT_BYTES)
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
            "outputs_sha256": result.outputs_sha256,
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
