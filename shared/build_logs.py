"""Build logs in Blob storage: each guest job's full log and the notebooks it executed, kept
after the VM is gone, under `<build id>/<entry>` in the controller's storage account.

An entry is named `<vm role>.<job>.log` for a job's log and
`<vm role>.<job>.<notebook path, '/' as '__'>.ipynb` for an executed notebook (no '/', so one
URL path segment names it). Everything stored passed through the telemetry scrubber first:
SAS signatures, tokens, keys never reach the container.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.artifacts import blob_service
from shared.settings import Settings
from shared.telemetry import scrub

LOGS_CONTAINER = "labimage-build-logs"
# Names a guest may give us are checked here before they become blob names.
_ENTRY = re.compile(
    r"^(build|relaunch)\.[a-z0-9][a-z0-9._-]{0,62}\.(log|[A-Za-z0-9._ ~-]{1,200}\.ipynb)$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ~-]")
_ROLE_JOB = re.compile(r"^(build|relaunch)\.[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class LogEntry:
    name: str
    bytes: int
    content_type: str


def valid_entry(name: str) -> bool:
    return bool(_ENTRY.fullmatch(name)) and ".." not in name


def job_log_entry(role: str, job: str) -> str:
    return f"{role}.{job}.log"


def notebook_entry(role: str, job: str, notebook: str) -> str:
    """`notebook` is the path the job ran it under; characters a name cannot hold become '_'."""
    flat = _UNSAFE.sub("_", notebook.replace("/", "__")).replace("..", "_.")
    return f"{role}.{job}.{flat[-200:]}"


def content_type(entry: str) -> str:
    return "application/x-ipynb+json" if entry.endswith(".ipynb") else "text/plain"


def _container(settings: Settings, credential: TokenCredential | None) -> ContainerClient:
    return blob_service(settings, credential).get_container_client(LOGS_CONTAINER)


def store_entry(
    settings: Settings,
    credential: TokenCredential | None,
    build_id: str,
    entry: str,
    text: str,
) -> int:
    """Scrub `text` and store it as `entry` of the build (overwriting: copying twice is
    harmless); the number of bytes stored."""
    if not valid_entry(entry):
        raise ValueError(f"invalid log entry name {entry!r}")
    data = scrub(text).encode("utf-8")
    container = _container(settings, credential)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    container.upload_blob(
        f"{build_id}/{entry}",
        data,
        overwrite=True,
        content_settings=ContentSettings(content_type=content_type(entry)),
    )
    return len(data)


def list_entries(
    settings: Settings, credential: TokenCredential | None, build_id: str
) -> list[LogEntry]:
    """The stored entries of a build, by name; empty when none were stored."""
    container = _container(settings, credential)
    prefix = f"{build_id}/"
    try:
        blobs = list(container.list_blobs(name_starts_with=prefix))
    except ResourceNotFoundError:  # no build has stored a log yet
        return []
    entries = [
        LogEntry(b.name[len(prefix) :], int(b.size or 0), content_type(b.name)) for b in blobs
    ]
    return sorted(entries, key=lambda e: e.name)


def resolve_entry(entries: list[LogEntry], asked: str) -> LogEntry | None:
    """The entry `asked` names: its full name, or a job's log without the '.log'."""
    by_name = {e.name: e for e in entries}
    return by_name.get(asked) or (
        by_name.get(f"{asked}.log") if _ROLE_JOB.fullmatch(asked) else None
    )


def read_entry(
    settings: Settings, credential: TokenCredential | None, build_id: str, entry: str
) -> bytes:
    """The entry's bytes (bounded when it was stored)."""
    return _container(settings, credential).download_blob(f"{build_id}/{entry}").readall()
