"""Test helpers around localcloud's own services: its git server as a process, and a read SAS
on an Azurite container."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from localcloud import azurite

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def git_server(state: Path, log: Path) -> Iterator[int]:
    """`python -m localcloud.gitserver` over `state`/git on a free port (yielded); its output
    goes to `log`; stopped on exit."""
    port = azurite.free_port()
    command = [sys.executable, "-m", "localcloud.gitserver", "--state-dir", str(state)]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        azurite.wait_for_ports([port], server)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def read_sas(container: ContainerClient, hours: float = 1) -> str:
    """A SAS query (no '?') that lets its holder list and read `container`."""
    key = container.credential.account_key
    return generate_container_sas(
        container.account_name,
        container.container_name,
        account_key=key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=hours),
    )
