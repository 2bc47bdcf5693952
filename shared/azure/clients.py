"""The azure-mgmt clients, made once per process from settings (endpoint, CA, credential)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from shared.settings import Settings


@dataclass
class AzureClients:
    """Lazily made clients; nothing connects until the first call."""

    settings: Settings

    @cached_property
    def credential(self) -> DefaultAzureCredential:
        # Managed identity on Azure (and in localcloud, whose host serves the same endpoint).
        # A user-assigned identity is named by its client id (AzureWebJobsStorage__clientId).
        return DefaultAzureCredential(
            exclude_interactive_browser_credential=True,
            managed_identity_client_id=self.settings.managed_identity_client_id,
        )

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "base_url": self.settings.arm_endpoint,
            "credential_scopes": [self.settings.arm_scope],
            "polling_interval": 2,
        }
        if self.settings.arm_ca_bundle:
            kwargs["connection_verify"] = self.settings.arm_ca_bundle
        return kwargs

    @cached_property
    def compute(self) -> ComputeManagementClient:
        return ComputeManagementClient(
            self.credential, self.settings.subscription_id, **self._client_kwargs()
        )

    @cached_property
    def network(self) -> NetworkManagementClient:
        return NetworkManagementClient(
            self.credential, self.settings.subscription_id, **self._client_kwargs()
        )

    @cached_property
    def resources(self) -> ResourceManagementClient:
        return ResourceManagementClient(
            self.credential, self.settings.subscription_id, **self._client_kwargs()
        )
