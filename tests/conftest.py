"""Fixtures shared by every test layer: a real Azurite, started once per session."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import azurite
from localcloud.signals import terminate_like_interrupt


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM tears down its fixtures (localcloud instances included) as
    # Ctrl-C does, instead of leaving namespaces, loop devices and processes behind.
    terminate_like_interrupt()


@pytest.fixture(scope="session")
def azurite_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of an Azurite started for this test session on free ports."""
    ports = azurite.AzuritePorts(azurite.free_port(), azurite.free_port(), azurite.free_port())
    location: Path = tmp_path_factory.mktemp("azurite")
    proc = azurite.start(location, ports, log=location / "azurite.log")
    try:
        yield azurite.connection_string(ports)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
