"""A manifest as the controller writes it for the seed request, for tests to vary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED = (Path(__file__).resolve().parents[1] / "examples" / "seed-request.json").read_bytes()
CONTAINER = "ooi-data"


def manifest_of(build_id: str, blob: dict[str, Any], numpy: str = "1.26.4") -> dict[str, Any]:
    request = json.loads(SEED)
    return {
        "schema": "labimage-manifest/1",
        "build": {"id": build_id, "vm": f"{build_id}-build"},
        "collected_at": "2026-11-28T00:00:00+00:00",
        "request": request,
        "labimage_version": "0.1.0",
        "base_image": {
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "exact_version": "24.04.202501010",
        },
        "vm_size": "Standard_D2s_v5",
        "python": {"installer": "uv", "installer_version": "uv 0.9.1", "python_version": "3.11.9"},
        "python_packages": [
            {"name": "numpy", "version": numpy, "hashes": ["sha256:" + "a" * 64]},
            {"name": "pandas", "version": "2.2.3", "hashes": ["sha256:" + "b" * 64]},
        ],
        "conda_explicit": None,
        "conda_explicit_sha256": None,
        "os_id": "ubuntu",
        "os_packages": [{"name": "bash", "version": "5.2.21-2ubuntu4", "arch": "amd64"}],
        "data": [{"container": CONTAINER, "destination": "/datadrive/data/ooi", "blobs": [blob]}],
        "repositories": [
            {
                "url": request["repositories"][0]["url"],
                "ref": "v1.0",
                "destination": "/datadrive/notebooks",
                "commit": "c" * 40,
            }
        ],
        "notebooks": [{"name": "notebooks/ctd.ipynb", "outputs_sha256": "d" * 64}],
    }
