"""Turn request values into script runs: fixed script text plus arguments and a parameters file.

Request values are never spliced into script text. They travel as separate argv entries (quoted
by `shared.ssh.quoting`) or inside a JSON parameters file uploaded with mode 0600 beside the job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.remote import load_script
from shared.ssh.jobs import run_script, start_job
from shared.ssh.runner import Result, SshRunner

DEFAULT_PREFIX = "/opt/labimage"
PARAMS_FILE = "params.json"
# The official installer; Anaconda's has no stable "latest" link, so it must be configured.
MINIFORGE_URL = (
    "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-x86_64.sh"
)

Installer = Literal["uv", "miniforge", "anaconda"]


@dataclass(frozen=True)
class ScriptRun:
    """One guest script with what it needs: run it with `start` (detached) or `run_now`."""

    script: str  # file name in shared/remote/scripts
    args: tuple[str, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # may hold secrets
    interpreter: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return load_script(self.script)


def env_python(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/env/bin/python"


def _params(values: Mapping[str, Any]) -> dict[str, bytes]:
    return {PARAMS_FILE: json.dumps(dict(values), indent=1).encode("utf-8")}


def mount_disk(lun: int, mount_point: str, fs: str = "xfs") -> ScriptRun:
    if not 0 <= lun <= 63:
        raise ValueError("LUN must be between 0 and 63")
    return ScriptRun("mount_disk.sh", (str(lun), mount_point, fs))


def check_mount(mount_point: str) -> ScriptRun:
    return ScriptRun("check_mount.sh", (mount_point,))


def install_python(
    packages: Sequence[str],
    *,
    installer: Installer = "uv",
    python_version: str = "3.11",
    requirements: str | None = None,
    environment_yml: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    installer_url: str | None = None,
    owner: str | None = None,
    lock: str | None = None,
    require_hashes: bool = False,
) -> ScriptRun:
    """Install Python, Jupyter and `packages` into `<prefix>/env`; report in `report.json`.
    With `lock` (exact pins, from a manifest) only the lock is installed, without resolving
    dependencies; `packages` are then only checked to import."""
    if installer == "miniforge":
        installer_url = installer_url or MINIFORGE_URL
    elif installer == "anaconda" and not installer_url:
        raise ValueError("the anaconda installer needs installer_url (an https URL)")
    if not re.fullmatch(r"\d+(\.\d+){0,2}", python_version):
        raise ValueError("python_version must look like 3.11")
    params = {
        "installer": installer,
        "python_version": python_version,
        "packages": list(packages),
        "requirements": requirements,
        "environment_yml": environment_yml,
        "prefix": prefix,
        "installer_url": installer_url if installer != "uv" else None,
        "owner": owner,
        "lock": lock,
        "require_hashes": require_hashes,
    }
    return ScriptRun("install_python.sh", (PARAMS_FILE,), _params(params))


def pull_data(
    container_sas_url: str,
    destination: str,
    *,
    blobs: Sequence[str | Mapping[str, str]] | None = None,
    prefix: str | None = None,
    owner: str | None = None,
    require_md5: bool = False,
    python: str = "python3",
) -> ScriptRun:
    """Download blobs through the SAS URL (only ever inside the 0600 parameters file)."""
    params = {
        "container_url": container_sas_url,
        "blobs": [b if isinstance(b, str) else dict(b) for b in blobs] if blobs else None,
        "prefix": prefix,
        "destination": destination,
        "owner": owner,
        "require_md5": require_md5,
    }
    return ScriptRun("pull_data.py", (PARAMS_FILE,), _params(params), (python,))


def clone_repo(url: str, ref: str, dest: str, owner: str | None = None) -> ScriptRun:
    return ScriptRun("clone_repo.sh", (url, ref, dest, *((owner,) if owner else ())))


def run_notebooks(
    roots: Sequence[str],
    patterns: Sequence[str],
    timeout_s: int,
    *,
    python: str = env_python(),
    kernel: str = "python3",
) -> ScriptRun:
    """Execute notebooks headless; the report is `report.json` in the job directory."""
    params = {
        "roots": list(roots),
        "patterns": list(patterns),
        "timeout_s": timeout_s,
        "kernel": kernel,
        "report": "report.json",
    }
    return ScriptRun("run_notebooks.py", (PARAMS_FILE,), _params(params), (python,))


def start_jupyter(
    port: int, token: str, *, prefix: str = DEFAULT_PREFIX, root_dir: str = "/"
) -> ScriptRun:
    """Jupyter on the guest's 127.0.0.1:<port>; the token travels in a 0600 file."""
    return ScriptRun(
        "start_jupyter.sh",
        (f"{prefix}/env", str(port), "token", root_dir),
        {"token": token.encode("ascii")},
        ("/bin/bash",),
    )


def collect_guest(repositories: Sequence[str], prefix: str = DEFAULT_PREFIX) -> ScriptRun:
    """What the guest holds (packages, versions, commits) for the manifest; read-only."""
    params = {"prefix": prefix, "repositories": list(repositories)}
    return ScriptRun("collect_guest.py", (PARAMS_FILE,), _params(params), ("python3",))


def deprovision() -> ScriptRun:
    return ScriptRun("deprovision.sh")


async def start(runner: SshRunner, job_name: str, run: ScriptRun, timeout_s: int) -> bool:
    """Start `run` as a detached job (see `shared.ssh.jobs.start_job`); True if started now."""
    interpreter = run.interpreter or (("/bin/bash",) if run.script.endswith(".sh") else ())
    return await start_job(
        runner, job_name, run.text, run.args, timeout_s, files=run.files, interpreter=interpreter
    )


async def run_now(runner: SshRunner, run: ScriptRun, timeout_s: int) -> Result:
    """Run a short script and wait; `RemoteCommandError` on a non-zero exit."""
    interpreter = run.interpreter or (("/bin/bash",) if run.script.endswith(".sh") else ())
    return await run_script(
        runner,
        run.text,
        run.args,
        timeout_s,
        files=run.files,
        interpreter=interpreter,
        name=run.script,
    )
