"""One frozen settings object, read from the environment once.

Every name here is listed in local.settings.sample.json and set by the deployment template.

Storage is reached one of two ways, with the same names the Functions host uses for its own
connections: a connection string in `AzureWebJobsStorage` (Azurite, or an account key), or an
identity-based connection (`AzureWebJobsStorage__accountName`, or `__blobServiceUri`,
`__queueServiceUri` and `__tableServiceUri`) reached with the managed identity
(`AzureWebJobsStorage__clientId` / `AZURE_CLIENT_ID`). An identity-based connection is kept as a
key-less connection string (`BlobEndpoint=...;QueueEndpoint=...;TableEndpoint=...`), so the rest
of the code carries one string either way and asks `connection_has_secret` which path it is on.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
STORAGE_SUFFIX = "core.windows.net"
SERVICES = ("blob", "queue", "table")


@dataclass(frozen=True)
class Settings:
    storage_connection: str  # AzureWebJobsStorage: queues and the builds table
    # The account holding the data containers requests name. Never the controller's own
    # account by default: its containers hold the host's secrets and the deployed package.
    data_storage_connection: str | None
    subscription_id: str
    resource_group: str  # where build VMs, networks and images go
    location: str
    # Containers of the data account a request may name (fnmatch patterns); none by default.
    data_containers: tuple[str, ...] = ()
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    arm_ca_bundle: str | None = None  # extra CA to trust for Resource Manager (localcloud)
    ssh_key_dir: str | None = None  # where per-build SSH keys live when no Key Vault is set
    key_vault_url: str | None = None
    # The controller's address range, the only one the NSG lets in on port 22. Required when
    # read from the environment; never a wildcard.
    ssh_source_cidr: str = "127.0.0.1/32"
    autostop_scope: tuple[str, ...] = ()  # resource groups the auto-stop timer scans
    builds_table: str = "builds"
    # Cost guards (shared/costguard): auto-stop, idle stop, warnings, snooze, sweeper, costs.
    costs_table: str = "costactions"  # what the cost guards did and saw
    autostop_concurrency: int = 8  # ARM list calls and queue sends in flight during a scan
    autostop_catch_up_hours: float = 6.0  # a missed stop is still made this long after its time
    autostop_webhook_url: str | None = None  # POSTed a notice before each scheduled stop
    autostop_warn_minutes: int = 30  # how long before the stop the notice goes out
    public_url: str | None = None  # this API's base URL, for the snooze link in notices
    snooze_max_hours: int = 12  # the most one snooze may postpone a stop
    # Signs the workstations' one-click links when there is no Key Vault (offline); never logged.
    workstation_link_key: str | None = field(default=None, repr=False)
    idle_default_minutes: int = 60  # idle limit of kept VMs without labimage-idle-minutes
    idle_cpu_percent: float = 10.0  # CPU use above this counts as activity
    sweeper_grace_hours: float = 2.0  # a finished build's leftovers are swept after this
    install_parallel: int = 4  # guest jobs install runs at once (Python, data pulls, clones)
    # The user-assigned managed identity to sign in as; None lets azure-identity choose.
    managed_identity_client_id: str | None = None

    @property
    def arm_scope(self) -> str:
        return "https://management.azure.com/.default"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise RuntimeError(f"setting {name} is missing: see local.settings.sample.json")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = _optional(env, name)
    try:
        return float(value) if value is not None else default
    except ValueError:
        raise RuntimeError(f"setting {name} must be a number, not {value!r}") from None


def parse_connection_string(connection: str) -> dict[str, str]:
    """`Key=Value;...` as a dict with lower-case keys (values may contain '=')."""
    parts = (p.split("=", 1) for p in connection.split(";") if "=" in p)
    return {key.strip().lower(): value.strip() for key, value in parts}


def connection_has_secret(connection: str) -> bool:
    """True when the connection string carries an account key or a SAS (no identity needed)."""
    parsed = parse_connection_string(connection)
    return bool(parsed.get("accountkey") or parsed.get("sharedaccesssignature"))


def service_endpoint(connection: str, service: str) -> str:
    """The https URL of one service (blob, queue, table) named by a connection string."""
    parsed = parse_connection_string(connection)
    explicit = parsed.get(f"{service}endpoint")
    if explicit:
        return explicit.rstrip("/")
    account = parsed.get("accountname")
    if not account:
        raise ValueError(f"the storage connection names no {service} endpoint and no account")
    protocol = parsed.get("defaultendpointsprotocol", "https")
    suffix = parsed.get("endpointsuffix", STORAGE_SUFFIX)
    return f"{protocol}://{account}.{service}.{suffix}"


def identity_connection(prefix: str, env: Mapping[str, str]) -> str | None:
    """A key-less connection string from `<prefix>__accountName` or `<prefix>__<svc>ServiceUri`.

    None when no identity-based setting with that prefix is present.
    """
    account = env.get(f"{prefix}__accountName", "").strip()
    endpoints = {}
    for service in SERVICES:
        uri = env.get(f"{prefix}__{service}ServiceUri", "").strip()
        if uri:
            endpoints[service] = uri.rstrip("/")
        elif account:
            endpoints[service] = f"https://{account}.{service}.{STORAGE_SUFFIX}"
    if not endpoints:
        return None
    return ";".join(f"{s.capitalize()}Endpoint={url}" for s, url in endpoints.items())


def storage_connection(prefix: str, env: Mapping[str, str]) -> str | None:
    """The connection for a setting prefix: its connection string, else its identity form."""
    plain = env.get(prefix, "").strip()
    return plain or identity_connection(prefix, env)


def _patterns(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _optional(env, name) or ""
    return tuple(p.strip() for p in value.split(",") if p.strip())


# Narrower than this is a controller's range; wider is "the internet" under another name.
MIN_SSH_PREFIX = {4: 16, 6: 32}


def _ssh_source(env: Mapping[str, str]) -> str:
    """LABIMAGE_SSH_SOURCE_CIDR: one address or range (CIDR); required, never a wildcard."""
    value = _required(env, "LABIMAGE_SSH_SOURCE_CIDR")
    name = "LABIMAGE_SSH_SOURCE_CIDR"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise RuntimeError(
            f"setting {name} must be an address or range such as 203.0.113.0/28, not {value!r} "
            "(service tags and '*' would open SSH to the internet)"
        ) from None
    if network.prefixlen < MIN_SSH_PREFIX[network.version]:
        raise RuntimeError(
            f"setting {name} {value!r} is wider than /{MIN_SSH_PREFIX[network.version]}: "
            "set the controller's own outbound range (for example a NAT gateway's address)"
        )
    return str(network)


def _install_parallel(env: Mapping[str, str]) -> int:
    value = _number(env, "LABIMAGE_INSTALL_PARALLEL", 4)
    if value != int(value) or not 1 <= value <= 8:
        raise RuntimeError(f"setting LABIMAGE_INSTALL_PARALLEL must be 1 to 8, not {value!r}")
    return int(value)


def _client_id(env: Mapping[str, str]) -> str | None:
    # The Functions host's own setting for the storage identity, else azure-identity's.
    value = env.get("AzureWebJobsStorage__clientId", "") or env.get("AZURE_CLIENT_ID", "")
    return value.strip() or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once per process; a missing required setting is a clear error."""
    return read_settings(os.environ)


def read_settings(env: Mapping[str, str]) -> Settings:
    """Settings from `env` (the process environment, or a localcloud instance's env.json)."""
    storage = storage_connection("AzureWebJobsStorage", env)
    if not storage:
        raise RuntimeError(
            "setting AzureWebJobsStorage (or AzureWebJobsStorage__accountName) is missing: "
            "see local.settings.sample.json"
        )
    resource_group = _required(env, "LABIMAGE_RESOURCE_GROUP")
    scope = _optional(env, "LABIMAGE_AUTOSTOP_RESOURCE_GROUPS")
    return Settings(
        storage_connection=storage,
        data_storage_connection=storage_connection("LABIMAGE_DATA_STORAGE", env),
        data_containers=_patterns(env, "LABIMAGE_DATA_CONTAINERS"),
        subscription_id=_required(env, "AZURE_SUBSCRIPTION_ID"),
        resource_group=resource_group,
        location=_required(env, "LABIMAGE_LOCATION"),
        arm_endpoint=_optional(env, "LABIMAGE_ARM_ENDPOINT") or DEFAULT_ARM_ENDPOINT,
        arm_ca_bundle=_optional(env, "LABIMAGE_ARM_CA_BUNDLE"),
        ssh_key_dir=_optional(env, "LABIMAGE_SSH_KEY_DIR"),
        key_vault_url=_optional(env, "LABIMAGE_KEY_VAULT_URL"),
        ssh_source_cidr=_ssh_source(env),
        autostop_scope=tuple(g.strip() for g in (scope or resource_group).split(",") if g.strip()),
        autostop_concurrency=int(_number(env, "LABIMAGE_AUTOSTOP_CONCURRENCY", 8)),
        autostop_catch_up_hours=_number(env, "LABIMAGE_AUTOSTOP_CATCH_UP_HOURS", 6),
        autostop_webhook_url=_optional(env, "LABIMAGE_AUTOSTOP_WEBHOOK_URL"),
        autostop_warn_minutes=int(_number(env, "LABIMAGE_AUTOSTOP_WARN_MINUTES", 30)),
        public_url=_optional(env, "LABIMAGE_PUBLIC_URL"),
        snooze_max_hours=int(_number(env, "LABIMAGE_SNOOZE_MAX_HOURS", 12)),
        workstation_link_key=_optional(env, "LABIMAGE_WORKSTATION_LINK_KEY"),
        idle_default_minutes=int(_number(env, "LABIMAGE_IDLE_MINUTES", 60)),
        idle_cpu_percent=_number(env, "LABIMAGE_IDLE_CPU_PERCENT", 10),
        sweeper_grace_hours=_number(env, "LABIMAGE_SWEEPER_GRACE_HOURS", 2),
        install_parallel=_install_parallel(env),
        managed_identity_client_id=_client_id(env),
    )
