"""pull_data.py with blobs pinned to their sha256 under a prefix (an exact rebuild): exactly those
blobs, placed as the prefix places them, with the ETag recorded; a rewritten blob fails by name."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from shared.remote import render
from tests.local_services import read_sas

SCRIPT = Path(render.__file__).parent / "scripts" / "pull_data.py"


def pull(
    tmp_path: Path, url: str, dest: Path, blobs: list[dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    run = render.pull_data(url, str(dest), blobs=blobs, prefix="raw/")
    (tmp_path / "params.json").write_bytes(run.files["params.json"])
    return subprocess.run(
        [sys.executable, str(SCRIPT), "params.json"], cwd=tmp_path, capture_output=True, text=True
    )


def test_pinned_blobs_under_a_prefix(azurite_connection_string: str, tmp_path: Path) -> None:
    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.create_container(f"pin{uuid.uuid4().hex[:8]}")
    container.upload_blob("raw/ctd/a.csv", b"x,y\n1,2\n")
    container.upload_blob("raw/new.csv", b"added after the manifest")
    sas = read_sas(container)
    url = f"{container.url}?{sas}"
    pins = [{"name": "raw/ctd/a.csv", "sha256": hashlib.sha256(b"x,y\n1,2\n").hexdigest()}]

    done = pull(tmp_path, url, tmp_path / "d", pins)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d" / "ctd" / "a.csv").read_bytes() == b"x,y\n1,2\n"
    assert not (tmp_path / "d" / "new.csv").exists()  # only what the manifest recorded
    [entry] = json.loads((tmp_path / "manifest.json").read_text())["files"]
    etag = container.get_blob_client("raw/ctd/a.csv").get_blob_properties().etag
    assert entry["etag"] == etag

    container.upload_blob("raw/ctd/a.csv", b"x,y\n1,3\n", overwrite=True)
    again = pull(tmp_path, url, tmp_path / "e", pins)
    assert again.returncode == 1 and "sha256 mismatch for blob raw/ctd/a.csv" in again.stderr
    container.delete_container()
