"""The chaos run's own localcloud instance: up on its own ports and state folder, down after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.funchost.easyauth import mint_token
from localcloud.funchost.hostkeys import read_host_keys
from localcloud.instance import REPO_ROOT, read_env_file
from localcloud.instance import Layout as InstanceLayout

AUTH_SETTINGS = REPO_ROOT / "infra" / "authsettings.json"
BASE_PORTS = {
    "blob": 21000,
    "queue": 21001,
    "table": 21002,
    "arm": 29443,
    "identity": 29444,
    "git": 29445,
    "functions": 28071,
}
# The sweeper may take a finished build's leftovers at once (its default grace is 2 h); the
# idle probe's CPU rule is off (a sandbox's /proc/stat is the whole host's, see tests/e2e).
SETTINGS = {"LABIMAGE_SWEEPER_GRACE_HOURS": "0", "LABIMAGE_IDLE_CPU_PERCENT": "100"}
FIRST_BOOT_LOCK_S = 8
OWNER = "alice@example.org"  # examples/seed-request.json's owner
ADMIN_ROLE = "labimage.admin"


def ports(offset: int) -> dict[str, int]:
    return {name: port + offset for name, port in BASE_PORTS.items()}


def localcloud(command: str, state_dir: Path, offset: int, extra: list[str] | None = None) -> int:
    flags = [f"--{name}-port={port}" for name, port in ports(offset).items()]
    if command == "up":
        flags += [f"--setting={k}={v}" for k, v in SETTINGS.items()]
        flags += [f"--first-boot-lock-seconds={FIRST_BOOT_LOCK_S}"]
        flags += [f"--auth-settings={AUTH_SETTINGS}", *(extra or [])]
    return subprocess.call(
        [sys.executable, "-m", "localcloud", command, "--state-dir", str(state_dir), *flags],
        cwd=REPO_ROOT,
        timeout=900,
    )


@dataclass
class Instance:
    """A running instance, seen as its users see it."""

    state_dir: Path
    env: dict[str, Any]

    @classmethod
    def read(cls, state_dir: Path) -> Instance:
        env = read_env_file(InstanceLayout(state_dir))
        if env is None:
            raise RuntimeError(f"no localcloud instance in {state_dir}")
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            os.environ[name] = env["settings"][name]  # the azure-mgmt clients sign in with it
        return cls(state_dir, env)

    @property
    def settings(self) -> dict[str, str]:
        return dict(self.env["settings"])

    @property
    def storage(self) -> str:
        return self.settings["AzureWebJobsStorage"]

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the Functions host signed in as the seed request's owner, an administrator
        (the host's admin API: its master key)."""
        secrets = self.state_dir / "funchost"
        token = mint_token(secrets, OWNER, roles=(ADMIN_ROLE,))
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        if path.startswith("/admin/"):
            headers["x-functions-key"] = read_host_keys(secrets)["master"]
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.env['endpoints']['functions']}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except (OSError, ValueError):
            return 0, None  # the host is away (killed and not back yet)

    def arm_admin(self, method: str, route: str, body: Any = None) -> Any:
        """Call the ARM emulator's admin route `/localcloud/<route>` as the controller."""
        import ssl

        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=self.settings["AZURE_CLIENT_ID"])
        token = credential.get_token("https://management.azure.com/.default").token
        request = urllib.request.Request(
            f"{self.settings['LABIMAGE_ARM_ENDPOINT']}/localcloud/{route}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        context = ssl.create_default_context(cafile=self.settings["LABIMAGE_ARM_CA_BUNDLE"])
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read())


def wait_for_api(instance: Instance, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while instance.api("GET", "/admin/host/status")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the Functions host does not answer")
        time.sleep(0.5)
