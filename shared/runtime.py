"""The long-lived collaborators of one Functions worker process, made once and lazily."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from shared import telemetry
from shared.azure.clients import AzureClients
from shared.bus import QueueBus
from shared.settings import Settings, get_settings
from shared.state.store import BuildStore


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def store(self) -> BuildStore:
        s = self.settings
        credential = self.azure.credential  # used only when the connection has no key
        return BuildStore.from_connection_string(s.storage_connection, s.builds_table, credential)

    @cached_property
    def bus(self) -> QueueBus:
        return QueueBus.from_connection_string(
            self.settings.storage_connection, self.azure.credential
        )

    @cached_property
    def azure(self) -> AzureClients:
        return AzureClients(self.settings)

    @cached_property
    def keys(self) -> Any:
        from shared.ssh.keys import DirectoryKeyStore

        if self.settings.ssh_key_dir:
            return DirectoryKeyStore(self.settings.ssh_key_dir)
        raise RuntimeError("no SSH key store: set LABIMAGE_SSH_KEY_DIR (Key Vault comes later)")


@cache
def get_runtime() -> Runtime:
    """The process's runtime; creating it connects to nothing (telemetry starts exporting
    in the background when APPLICATIONINSIGHTS_CONNECTION_STRING is set)."""
    telemetry.configure()
    return Runtime(get_settings())
