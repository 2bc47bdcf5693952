"""The seed request's packages installed on a fresh localcloud guest with uv, pip and miniforge.

Each installer gets its own fresh VM (the Ubuntu stand-in: python3 without venv or pip), the
same package list (the seed's plus Jupyter's base), one run each. Wall time is the install
command's; bytes downloaded are what the VM's network link carried towards the VM meanwhile
(the host side of its veth pair), so apt, the package index and any installer download count.

    sudo .venv/bin/python bench/install.py [--only uv,pip] [--state-dir DIR]

uv runs the controller's own `install_python.sh` (apt python3-venv, uv from its wheel, uv pip);
miniforge runs it with `installer: miniforge` (the installer comes from GitHub, which a
localcloud guest may not reach: then it is reported as failed, with the reason); pip is the
plain recipe: apt python3-venv, a venv, `pip install`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import yaml

from localcloud.instance import DEFAULT_STATE_DIR
from localcloud.registry import registered
from localcloud.sandbox.api import BootSpec, GuestConfig
from localcloud.sandbox.host import SandboxHost
from localcloud.sandbox.subnets import allocate_subnet
from shared.remote import load_script

REPO = Path(__file__).resolve().parent.parent
BASE = ["jupyterlab", "notebook", "nbclient", "nbformat", "ipykernel"]
PIP_RECIPE = """set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get -q -o DPkg::Lock::Timeout=600 update >&2
apt-get -q -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv >&2
python3 -m venv /opt/bench/env
/opt/bench/env/bin/pip install -q --disable-pip-version-check "$@" >&2
/opt/bench/env/bin/python -c 'import jupyterlab, numpy, pandas, xarray, matplotlib'
echo ok
"""


@dataclass
class Outcome:
    installer: str
    ok: bool
    seconds: float
    bytes_down: int
    note: str


def seed_packages() -> list[str]:
    request = json.loads((REPO / "examples" / "seed-request.json").read_text())
    return list(request["python"]["packages"])


def guest(name: str) -> tuple[GuestConfig, asyncssh.SSHKey, asyncssh.SSHKey]:
    client = asyncssh.generate_private_key("ssh-ed25519")
    host = asyncssh.generate_private_key("ssh-ed25519")
    keys = {
        "ed25519_private": host.export_private_key().decode(),
        "ed25519_public": host.export_public_key().decode().strip(),
    }
    custom = ("#cloud-config\n" + yaml.safe_dump({"ssh_keys": keys})).encode()
    public = client.export_public_key().decode().strip()
    return GuestConfig(name, "azureuser", [public], custom), client, host


def rx_of_vm(sandbox: SandboxHost, vm_key: str) -> int:
    """Bytes the host sent into the VM's link so far (the VM's downloads)."""
    record = json.loads((sandbox.layout.vm_dir(vm_key) / "run.json").read_text())
    veth = sandbox.layout.veth_host(int(record["slot"]))
    return int(Path(f"/sys/class/net/{veth}/statistics/tx_bytes").read_text())


def command_for(installer: str, packages: list[str]) -> tuple[str, bytes]:
    """The shell command to run as root and the input it reads (script + parameters)."""
    if installer == "pip":
        quoted = " ".join(shlex.quote(p) for p in [*BASE, *packages])
        return f"sudo bash -s -- {quoted}", PIP_RECIPE.encode()
    params = {
        "installer": installer,
        "python_version": "3.11",
        "packages": packages,
        "prefix": "/opt/labimage",
        "installer_url": (
            "https://github.com/conda-forge/miniforge/releases/latest/download/"
            "Miniforge3-Linux-x86_64.sh"
            if installer == "miniforge"
            else None
        ),
    }
    script = load_script("install_python.sh")
    # the parameters file and the script travel on stdin, never on the command line
    wrapper = (
        "set -eo pipefail; mkdir -p /root/bench && cd /root/bench\n"
        f"cat > params.json <<'JSON'\n{json.dumps(params)}\nJSON\n"
        f"cat > install_python.sh <<'SCRIPT'\n{script}\nSCRIPT\n"
        "bash install_python.sh params.json | tail -c 300\n"
    )
    return "sudo bash -s", wrapper.encode()


async def run_one(sandbox: SandboxHost, installer: str, packages: list[str]) -> Outcome:
    vm_key = f"bench-{installer}"
    os_disk = sandbox.layout.state_dir / "disks" / vm_key
    sandbox.new_os_disk(os_disk)
    config, client, host = guest(vm_key)
    address = sandbox.boot(BootSpec(vm_key, os_disk, [], config))
    try:
        async with asyncssh.connect(
            address,
            username="azureuser",
            client_keys=[client],
            known_hosts=([host.convert_to_public()], [], []),
        ) as conn:
            await conn.run("cloud-init status --wait", timeout=300)
            command, stdin = command_for(installer, packages)
            before = rx_of_vm(sandbox, vm_key)
            started = time.monotonic()
            result = await conn.run(command, input=stdin.decode(), timeout=3600)
            seconds = time.monotonic() - started
            down = rx_of_vm(sandbox, vm_key) - before
        stderr = str(result.stderr or "").strip().splitlines()
        note = "" if result.exit_status == 0 else (stderr[-1] if stderr else "failed")
        return Outcome(installer, result.exit_status == 0, seconds, down, note)
    finally:
        sandbox.shutdown(vm_key)
        sandbox.delete_disk(os_disk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="uv,pip,miniforge")
    parser.add_argument("--state-dir", type=Path)
    args = parser.parse_args()
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="labimage-bench-install-"))
    subnet = allocate_subnet(state.resolve(), DEFAULT_STATE_DIR, registered())
    # The first-boot package job is left out: it would add the same wait to every installer.
    sandbox = SandboxHost(state, subnet=str(subnet), first_boot_lock_s=0)
    packages = seed_packages()
    outcomes = []
    try:
        sandbox.prepare()
        for installer in args.only.split(","):
            print(f"installing with {installer} ...", flush=True)
            outcome = asyncio.run(run_one(sandbox, installer, packages))
            print(f"  {outcome}", flush=True)
            outcomes.append(outcome)
    finally:
        sandbox.teardown_all()
        if not args.state_dir:
            shutil.rmtree(state, ignore_errors=True)
    print(f"\npackages: {' '.join(BASE + packages)}\n")
    print(f"{'installer':<10} {'result':<7} {'wall s':>8} {'MB down':>9}  note")
    for o in outcomes:
        print(
            f"{o.installer:<10} {'ok' if o.ok else 'FAILED':<7} {o.seconds:8.1f} "
            f"{o.bytes_down / 1e6:9.1f}  {o.note}"
        )


if __name__ == "__main__":
    main()
