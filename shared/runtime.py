"""The long-lived collaborators of one Functions worker process, made once and lazily."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING

from shared import telemetry
from shared.azure.clients import AzureClients
from shared.bus import QueueBus
from shared.settings import Settings, get_settings
from shared.state.store import BuildStore

if TYPE_CHECKING:
    from shared.ssh.keys import KeyStore


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
    def keys(self) -> KeyStore:
        """Key Vault when LABIMAGE_KEY_VAULT_URL is set, else the LABIMAGE_SSH_KEY_DIR folder."""
        s = self.settings
        if s.key_vault_url:
            from shared.ssh.keyvault import KeyVaultKeyStore

            # The CA setting is localcloud's: its vault shares the ARM emulator's certificate.
            return KeyVaultKeyStore(s.key_vault_url, self.azure.credential, s.arm_ca_bundle)
        if s.ssh_key_dir:
            from shared.ssh.keys import DirectoryKeyStore

            return DirectoryKeyStore(s.ssh_key_dir)
        raise RuntimeError(
            "no SSH key store: set LABIMAGE_KEY_VAULT_URL (Key Vault) or LABIMAGE_SSH_KEY_DIR "
            "(a folder); see local.settings.sample.json"
        )


@cache
def get_runtime() -> Runtime:
    """The process's runtime; creating it connects to nothing (telemetry starts exporting
    in the background when APPLICATIONINSIGHTS_CONNECTION_STRING is set)."""
    telemetry.configure()
    return Runtime(get_settings())
