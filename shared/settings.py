"""One frozen settings object, read from the environment once.

Every name here is listed in local.settings.sample.json and set by the deployment template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"


@dataclass(frozen=True)
class Settings:
    storage_connection: str  # AzureWebJobsStorage: queues and the builds table
    data_storage_connection: str  # the account holding the data containers requests name
    subscription_id: str
    resource_group: str  # where build VMs, networks and images go
    location: str
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    arm_ca_bundle: str | None = None  # extra CA to trust for Resource Manager (localcloud)
    ssh_key_dir: str | None = None  # where per-build SSH keys live when no Key Vault is set
    key_vault_url: str | None = None
    ssh_source_cidr: str = "*"  # the controller's address range, the only one allowed in by NSG
    autostop_scope: tuple[str, ...] = ()  # resource groups the auto-stop timer scans
    builds_table: str = "builds"

    @property
    def arm_scope(self) -> str:
        return "https://management.azure.com/.default"


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"setting {name} is missing: see local.settings.sample.json")
    return value


def _optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once per process; a missing required setting is a clear error."""
    storage = _required("AzureWebJobsStorage")
    resource_group = _required("LABIMAGE_RESOURCE_GROUP")
    scope = _optional("LABIMAGE_AUTOSTOP_RESOURCE_GROUPS")
    return Settings(
        storage_connection=storage,
        data_storage_connection=_optional("LABIMAGE_DATA_STORAGE") or storage,
        subscription_id=_required("AZURE_SUBSCRIPTION_ID"),
        resource_group=resource_group,
        location=_required("LABIMAGE_LOCATION"),
        arm_endpoint=_optional("LABIMAGE_ARM_ENDPOINT") or DEFAULT_ARM_ENDPOINT,
        arm_ca_bundle=_optional("LABIMAGE_ARM_CA_BUNDLE"),
        ssh_key_dir=_optional("LABIMAGE_SSH_KEY_DIR"),
        key_vault_url=_optional("LABIMAGE_KEY_VAULT_URL"),
        ssh_source_cidr=_optional("LABIMAGE_SSH_SOURCE_CIDR") or "*",
        autostop_scope=tuple(g.strip() for g in (scope or resource_group).split(",") if g.strip()),
    )
