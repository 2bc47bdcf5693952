"""A controller runtime wired to the session's Azurite, with its own table per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from shared.runtime import Runtime
from shared.settings import Settings


@pytest.fixture
def settings(azurite_connection_string: str, tmp_path: Path) -> Settings:
    return Settings(
        storage_connection=azurite_connection_string,
        data_storage_connection=azurite_connection_string,
        data_containers=("*-data",),
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="labimage-test",
        location="westeurope",
        ssh_key_dir=str(tmp_path / "keys"),
        builds_table="builds" + secrets.token_hex(4),
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose queues start empty, and whose table is dropped afterwards."""
    queues = QueueServiceClient.from_connection_string(settings.storage_connection)
    for queue in queues.list_queues():
        if queue.name.startswith("build-"):
            queues.delete_queue(queue.name)
    yield Runtime(settings)
    TableServiceClient.from_connection_string(settings.storage_connection).delete_table(
        settings.builds_table
    )


@pytest.fixture(scope="session")
def app_functions() -> dict[str, Any]:
    """The app's registered functions by name. get_functions() may be called once per process,
    so every module that calls the app through the host's objects shares this one result."""
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}
