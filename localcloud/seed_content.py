"""The real things the demo and the end-to-end tests build from: a notebook repository served by
the local git server, and a data folder in an Azurite Blob container."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContentSettings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ooi"
OOI_CSV = "AT4212_discrete_summary.csv"


def notebook(*cells: str) -> dict[str, object]:
    """A minimal nbformat 4 notebook with one code cell per source string."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
    }


OOI_NOTEBOOK = notebook(
    "import matplotlib\nmatplotlib.use('Agg')\nimport numpy as np, pandas as pd, xarray as xr\n"
    "import matplotlib.pyplot as plt",
    "df = pd.read_csv('/datadrive/data/ooi/AT4212_discrete_summary.csv')\n"
    "assert len(df) > 10, len(df)\nprint(df.shape)",
    "depth = pd.to_numeric(df['CTD Depth [m]'], errors='coerce').where(lambda d: d > -9000)\n"
    "ds = xr.Dataset({'depth': ('cast', depth.to_numpy())})\n"
    "print(float(np.nanmax(ds.depth)))",
    "fig, ax = plt.subplots()\nax.hist(depth.dropna(), bins=20)\nfig.savefig('/tmp/depth.png')",
)

RAISING_NOTEBOOK = notebook(
    "x = 1",
    "raise ValueError('the calibration table is missing')",
)


def make_repository(git_dir: Path, name: str, files: dict[str, str], tag: str) -> str:
    """Create (or replace) bare repository `<git_dir>/<name>` holding `files`, tagged `tag`.

    Returns the commit id. `files` maps paths in the repository to their text.
    """
    bare = git_dir / name
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "labimage demo",
        "GIT_AUTHOR_EMAIL": "demo@labimage.invalid",
        "GIT_COMMITTER_NAME": "labimage demo",
        "GIT_COMMITTER_EMAIL": "demo@labimage.invalid",
    }
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=env)
        for path, text in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(root), "commit", "-qm", "notebooks"], check=True, env=env)
        subprocess.run(["git", "-C", str(root), "tag", tag], check=True, env=env)
        if bare.exists():
            subprocess.run(["rm", "-rf", str(bare)], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(root), str(bare)], check=True, env=env)
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
    return commit


def ooi_repository(git_dir: Path) -> str:
    return make_repository(
        git_dir,
        "ooi-notebooks.git",
        {"notebooks/explore.ipynb": json.dumps(OOI_NOTEBOOK), "README.md": "OOI cruise AT4212\n"},
        "v1.0",
    )


def raising_repository(git_dir: Path, name: str = "broken-notebooks.git") -> str:
    return make_repository(
        git_dir, name, {"notebooks/broken.ipynb": json.dumps(RAISING_NOTEBOOK)}, "v1.0"
    )


def ooi_csv() -> bytes:
    """The OOI AT4212 discrete sample summary (from ../shared/data), or a small stand-in."""
    source = SHARED_DATA / OOI_CSV
    if source.exists():
        return source.read_bytes()
    rows = ["Cruise,Station,CTD Depth [m]"] + [f"AT4212,S{i},{i * 37.5}" for i in range(40)]
    return ("\r\n".join(rows) + "\r\n").encode()


def upload_data(connection: str, container: str, blobs: dict[str, bytes]) -> None:
    """Put `blobs` (name → bytes) into `container`, with Content-MD5 as Azure records it."""
    service = BlobServiceClient.from_connection_string(connection)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(container)
    for name, data in blobs.items():
        service.get_blob_client(container, name).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type="text/csv"),
            validate_content=True,
        )


def seed_ooi(connection: str, git_dir: Path) -> None:
    """Everything examples/seed-request.json refers to."""
    ooi_repository(git_dir)
    upload_data(connection, "ooi-data", {f"AT4212/{OOI_CSV}": ooi_csv()})
