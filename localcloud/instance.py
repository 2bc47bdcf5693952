"""One localcloud instance: its state folder layout, ports, settings and health probes."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localcloud import azurite

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".localcloud"
# A fixed fake subscription: localcloud has exactly one.
SUBSCRIPTION_ID = "00000000-0000-4000-8000-00000000a11b"
RESOURCE_GROUP = "labimage-builds"
LOCATION = "westeurope"
AUTOSTOP_SCHEDULE = "0 */15 * * * *"
SWEEPER_SCHEDULE = "0 0 * * * *"
IDLE_SCHEDULE = "0 */10 * * * *"
WATCHDOG_SCHEDULE = "0 */5 * * * *"
WORKSTATION_SCHEDULE = "0 */5 * * * *"
RESOURCE_GROUP_API = "2021-04-01"
# The two principals the emulator knows (localcloud/roles.py): the controller's user-assigned
# identity, which the Functions host selects with AZURE_CLIENT_ID as on Azure, and the
# deployer, who makes the resource groups as the person running the Bicep deployment does.
CONTROLLER_CLIENT_ID = "5a1c0c1d-0000-4000-8000-00000000c11e"
CONTROLLER_PRINCIPAL_ID = "5a1c0c1d-0000-4000-8000-0000000000b1"
DEPLOYER_CLIENT_ID = "5a1c0c1d-0000-4000-8000-00000000de91"
DEPLOYER_PRINCIPAL_ID = "5a1c0c1d-0000-4000-8000-0000000000d1"
# The Key Vault emulator's ARM id (a controller group of its own, as the Bicep deploys it):
# role assignments name the vault by it.
VAULT_RESOURCE_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/labimage-controller"
    "/providers/Microsoft.KeyVault/vaults/localcloud-vault"
)


@dataclass(frozen=True)
class Ports:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    arm: int = 8443
    identity: int = 8444
    git: int = 8445
    functions: int = 7071
    vault: int = 8446  # Key Vault; `up` defaults it to arm + 3 so instances stay apart

    def azurite(self) -> azurite.AzuritePorts:
        return azurite.AzuritePorts(self.blob, self.queue, self.table)


@dataclass(frozen=True)
class Layout:
    """Where everything of one instance lives."""

    state_dir: Path

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env.json"

    @property
    def azurite_dir(self) -> Path:
        return self.state_dir / "azurite"

    @property
    def arm_dir(self) -> Path:
        return self.state_dir / "arm"

    @property
    def ca_pem(self) -> Path:
        return self.arm_dir / "ca.pem"

    @property
    def identity_header_file(self) -> Path:
        # The ARM emulator reads its managed-identity secret from here (TokenIssuer.in_folder).
        return self.arm_dir / "identity-header"

    @property
    def authorization_file(self) -> Path:
        # What the ARM emulator enforces, made from infra/roles.json (localcloud/roles.py).
        return self.arm_dir / "authorization.json"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def git_dir(self) -> Path:
        return self.state_dir / "git"

    @property
    def funchost_dir(self) -> Path:
        """The Functions host's keys (host-keys.json) and sign-in key (signin-key), mode 0600."""
        return self.state_dir / "funchost"


def app_settings(
    layout: Layout, ports: Ports, identity_header: str, key_vault: bool = False
) -> dict[str, str]:
    """The environment the controller reads, pointed at this instance.

    SSH keys go to the instance's key folder, or with `key_vault` to its Key Vault emulator
    (which shares the ARM emulator's CA, LABIMAGE_ARM_CA_BUNDLE)."""
    storage = azurite.connection_string(ports.azurite())
    keys = (
        {"LABIMAGE_KEY_VAULT_URL": vault_url(ports)}
        if key_vault
        else {
            "LABIMAGE_SSH_KEY_DIR": str(layout.keys_dir),
            # Without a vault the signing key of one-click links is a setting, new per instance.
            "LABIMAGE_WORKSTATION_LINK_KEY": secrets.token_hex(32),
        }
    )
    return {
        "AzureWebJobsStorage": storage,
        "LABIMAGE_DATA_STORAGE": storage,
        "LABIMAGE_DATA_CONTAINERS": "*-data",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
        "LABIMAGE_RESOURCE_GROUP": RESOURCE_GROUP,
        "LABIMAGE_LOCATION": LOCATION,
        "LABIMAGE_ARM_ENDPOINT": f"https://127.0.0.1:{ports.arm}",
        "LABIMAGE_ARM_CA_BUNDLE": str(layout.ca_pem),
        **keys,
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{ports.identity}/msi/token",
        "IDENTITY_HEADER": identity_header,
        "AZURE_CLIENT_ID": CONTROLLER_CLIENT_ID,
        "BUILD_REQUESTS_QUEUE": "build-requests",
        "AUTOSTOP_SCHEDULE": AUTOSTOP_SCHEDULE,
        "SWEEPER_SCHEDULE": SWEEPER_SCHEDULE,
        "WATCHDOG_SCHEDULE": WATCHDOG_SCHEDULE,
        "IDLE_SCHEDULE": IDLE_SCHEDULE,
        "WORKSTATION_SCHEDULE": WORKSTATION_SCHEDULE,
        "LABIMAGE_AUTOSTOP_CONCURRENCY": "8",
        "LABIMAGE_AUTOSTOP_CATCH_UP_HOURS": "6",
        "LABIMAGE_AUTOSTOP_WEBHOOK_URL": "",
        "LABIMAGE_AUTOSTOP_WARN_MINUTES": "30",
        "LABIMAGE_PUBLIC_URL": f"http://127.0.0.1:{ports.functions}",
        "LABIMAGE_SNOOZE_MAX_HOURS": "12",
        "LABIMAGE_IDLE_MINUTES": "60",
        "LABIMAGE_IDLE_CPU_PERCENT": "10",
        "LABIMAGE_SWEEPER_GRACE_HOURS": "2",
        "LABIMAGE_AUTOSTOP_RESOURCE_GROUPS": RESOURCE_GROUP,
        "LABIMAGE_SSH_SOURCE_CIDR": "127.0.0.1/32",
    }


def vault_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.vault}"


def endpoints(layout: Layout, ports: Ports) -> dict[str, str]:
    """Public addresses of the instance (nothing secret)."""
    return {
        "functions": f"http://127.0.0.1:{ports.functions}",
        "arm": f"https://127.0.0.1:{ports.arm}",
        "identity": f"http://127.0.0.1:{ports.identity}/msi/token",
        "vault": vault_url(ports),
        "git": f"https://127.0.0.1:{ports.git}",
        "blob": f"http://127.0.0.1:{ports.blob}/{azurite.ACCOUNT_NAME}",
        "queue": f"http://127.0.0.1:{ports.queue}/{azurite.ACCOUNT_NAME}",
        "table": f"http://127.0.0.1:{ports.table}/{azurite.ACCOUNT_NAME}",
        "ca_pem": str(layout.ca_pem),
    }


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only (it holds the identity secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def write_env_file(
    layout: Layout, ports: Ports, settings: dict[str, str], components: list[str]
) -> None:
    """Record the instance for tests, the demo and later commands (mode 0600)."""
    write_private_json(
        layout.env_file,
        {
            "state_dir": str(layout.state_dir),
            "settings": settings,
            "endpoints": endpoints(layout, ports),
            "ports": asdict(ports),
            "components": components,  # what this `up` started and answered
        },
    )


def read_env_file(layout: Layout) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(layout.env_file.read_text())
    except (OSError, ValueError):
        return None
    return data


# Probes: True when the component answers. They never send a secret.


def tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_answers(url: str, ca: Path | None = None) -> bool:
    """True when `url` gives any HTTP response (an error status still means it is up)."""
    context = None
    if url.startswith("https:"):
        if ca is None or not ca.exists():
            return False
        context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(url, timeout=2, context=context):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def probes(layout: Layout, ports: Ports) -> dict[str, bool]:
    sub = f"/subscriptions/{SUBSCRIPTION_ID}/resourcegroups?api-version={RESOURCE_GROUP_API}"
    return {
        "azurite": all(tcp_answers(p) for p in (ports.blob, ports.queue, ports.table)),
        "arm": http_answers(f"https://127.0.0.1:{ports.arm}{sub}", layout.ca_pem),
        "identity": http_answers(f"http://127.0.0.1:{ports.identity}/msi/token"),
        # Without a token the vault answers 401 with its challenge: it is up.
        "vault": http_answers(
            f"{vault_url(ports)}/secrets/probe?api-version=2025-07-01", layout.ca_pem
        ),
        "git": http_answers(f"https://127.0.0.1:{ports.git}/", layout.ca_pem),
        "functions": http_answers(f"http://127.0.0.1:{ports.functions}/admin/host/status"),
    }
