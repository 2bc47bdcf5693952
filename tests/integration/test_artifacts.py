"""A data pull of thousands of blobs: its manifest is checked, kept as a content-addressed blob
on Azurite, and the build record stays small enough for its Table entity."""

from __future__ import annotations

import json

import pytest

from shared.artifacts import get_json, put_json
from shared.remote.reports import BadGuestReport, DataManifest, parse_guest_json
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.record import Build


def manifest(count: int) -> dict[str, object]:
    files = [
        {
            "blob": f"AT4212/ctd/cast{i:05d}.nc",
            "path": f"/datadrive/data/ooi/ctd/cast{i:05d}.nc",
            "size": 1000 + i,
            "md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "md5_verified": True,
            "sha256": f"{i:064x}",
        }
        for i in range(count)
    ]
    return {"destination": "/datadrive/data/ooi", "files": files, "total_bytes": 0}


def test_a_manifest_of_4000_blobs_goes_to_blob_storage_and_the_record_stays_small(
    settings: Settings, runtime: Runtime
) -> None:
    text = json.dumps(manifest(4000))
    checked = parse_guest_json(DataManifest, text, "data manifest")
    stored = put_json(settings, None, "data-manifests", checked.model_dump())
    assert stored.bytes > 64 * 1024 * 10  # ten times what one Table property may hold
    again = put_json(settings, None, "data-manifests", checked.model_dump())
    assert again == stored  # content-addressed: the same document, the same blob
    assert len(get_json(settings, None, stored.blob)["files"]) == 4000

    summary = {"files": 4000, "total_bytes": 0, "manifest": stored.as_dict()}
    build = Build(id="bbigdata001", request={}, outputs={"install": {"data-0": summary}})
    runtime.store.create(build)
    assert runtime.store.get("bbigdata001").build.outputs["install"]["data-0"] == summary


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["files"][0].update(size=-1),
        lambda m: m["files"][0].update(sha256="not-a-digest"),
        lambda m: m["files"][0].update(blob=""),
        lambda m: m.update(files="everything"),
    ],
)
def test_a_manifest_the_script_would_not_write_is_refused(change: object) -> None:
    document = manifest(2)
    change(document)  # type: ignore[operator]
    with pytest.raises(BadGuestReport):
        parse_guest_json(DataManifest, json.dumps(document), "data manifest")
