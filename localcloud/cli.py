"""`localcloud up|status|down`: start, inspect and tear down one localcloud instance.

    python -m localcloud up     [--state-dir DIR] [--app-dir DIR] [--<component>-port N ...]
                                [--setting NAME=VALUE ...] [--key-vault] [--faults PLAN.json]
    python -m localcloud status [--state-dir DIR]
    python -m localcloud down   [--state-dir DIR] [--all] [--purge]
    python -m localcloud token  [--state-dir DIR] --name NAME [--object-id ID] [--role ROLE ...]

`up --auth-settings FILE` puts App Service authentication in front of the Functions host, as an
authsettingsV2 document describes it; `token` prints a bearer token signed in as a test
principal. The host keys are in <state>/funchost/host-keys.json.

Ports also come from LOCALCLOUD_<COMPONENT>_PORT (for example LOCALCLOUD_FUNCTIONS_PORT); the
Key Vault port defaults to the ARM port + 3.

`--key-vault` keeps per-build SSH keys in the Key Vault emulator (LABIMAGE_KEY_VAULT_URL) instead
of the key folder (LABIMAGE_SSH_KEY_DIR) that the demo and tests read.

VMs boot a base image made once per marketplace image and kept in a cache shared by every
instance (LOCALCLOUD_IMAGE_CACHE, default /var/cache/localcloud/images): `up` makes it first if
it is missing, `down` keeps it, `down --purge` removes it. `--first-boot-lock-seconds` (or
LOCALCLOUD_FIRST_BOOT_LOCK_S, default 45) is how long a fresh VM's package job holds dpkg's lock.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from localcloud import azurite, processes, registry
from localcloud.arm.certs import ensure_certificates
from localcloud.arm.options import add_platform_options
from localcloud.faults import FaultPlanError, read_plan
from localcloud.funchost.easyauth import mint_token
from localcloud.instance import (
    DEFAULT_STATE_DIR,
    DEPLOYER_CLIENT_ID,
    LOCATION,
    REPO_ROOT,
    RESOURCE_GROUP_API,
    SUBSCRIPTION_ID,
    VAULT_RESOURCE_ID,
    Layout,
    Ports,
    app_settings,
    endpoints,
    probes,
    read_env_file,
    write_env_file,
)
from localcloud.roles import write_authorization_file
from localcloud.sandbox import base_images
from localcloud.sandbox.subnets import allocate_subnet

COMPONENTS = ("azurite", "arm", "git", "functions")
START_TIMEOUT = 60


class UpError(RuntimeError):
    """A component did not come up; the message says which and where its log is."""


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise UpError(f"{what} exited with {proc.returncode}; {log}:\n{tail}")
        if time.monotonic() > deadline:
            raise UpError(f"{what} did not answer in {START_TIMEOUT} s; see {log}")
        time.sleep(0.2)


def _start_azurite(layout: Layout, ports: Ports) -> None:
    log = processes.log_path(layout.state_dir, "azurite")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = azurite.start(layout.azurite_dir, ports.azurite(), log=log)
    processes.record_pid(layout.state_dir, "azurite", proc.pid)


def _start_python(
    layout: Layout, name: str, module: str, args: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", module, *args]
    return processes.start_detached(layout.state_dir, name, argv, _python_env(env), REPO_ROOT)


def _start_arm(
    layout: Layout,
    ports: Ports,
    records_only: bool,
    default_security_type: str = "Standard",
    first_boot_lock_s: float = 45.0,
    arm_options: tuple[str, ...] = (),
) -> None:
    # Made here (idempotent; the emulator reuses them) so guests can be told to trust the CA.
    ensure_certificates(layout.arm_dir)
    args = ["--state-dir", str(layout.state_dir), "--port", str(ports.arm)]
    args += ["--identity-port", str(ports.identity), "--extra-ca-pem", str(layout.ca_pem)]
    args += ["--vault-port", str(ports.vault)]
    args += ["--authorization-file", str(layout.authorization_file)]
    args += ["--vault-resource-id", VAULT_RESOURCE_ID]
    # Inside a VM, 127.0.0.1:<port> reaches these host services (git clone, blob download).
    # Blob reads pass the Blob fault layer (BLOB rules of a fault plan) on their way.
    args += ["--relay-port", str(ports.git), "--guest-blob-port", str(ports.blob)]
    # Each instance's sandboxes get their own range, so two instances never share addresses.
    subnet = allocate_subnet(layout.state_dir, DEFAULT_STATE_DIR, registry.registered())
    args += ["--subnet", str(subnet)]
    args += ["--first-boot-lock-seconds", str(first_boot_lock_s)]
    args += ["--default-security-type", default_security_type]
    if records_only:
        args.append("--records-only")
    else:
        # The emulator would make it at the first VM; made here, `up` shows its progress.
        for image in base_images.OFFERED:
            base_images.ensure(image)
    args += arm_options
    proc = _start_python(layout, "arm", "localcloud.arm", args, {})
    log = processes.log_path(layout.state_dir, "arm")

    def answers() -> bool:
        health = probes(layout, ports)
        return health["arm"] and health["identity"] and health["vault"]

    _wait("the ARM emulator", answers, proc, log)


def _write_identity_header(layout: Layout) -> str:
    """A fresh managed-identity secret for this run, mode 0600, where the emulator reads it."""
    secret = secrets.token_urlsafe(32)
    layout.arm_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.identity_header_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def _resource_groups(settings: dict[str, str]) -> list[str]:
    """The build group and the auto-stop groups the controller's settings name."""
    extra = settings.get("LABIMAGE_AUTOSTOP_RESOURCE_GROUPS", "").split(",")
    groups = [settings["LABIMAGE_RESOURCE_GROUP"], *(g.strip() for g in extra)]
    return list(dict.fromkeys(g for g in groups if g and g != "*"))


def _write_authorization(settings: dict[str, str], layout: Layout) -> None:
    groups = _resource_groups(settings)
    write_authorization_file(
        layout.authorization_file, SUBSCRIPTION_ID, groups[0], groups[1:], VAULT_RESOURCE_ID
    )


def _create_resource_groups(settings: dict[str, str], layout: Layout) -> None:
    """PUT the build group and the auto-stop groups through the emulator, as the deployer (the
    controller's identity has no right to make groups, as on Azure)."""
    for group in _resource_groups(settings):
        _create_resource_group(settings, layout, group)


def _create_resource_group(settings: dict[str, str], layout: Layout, group: str) -> None:
    query = urllib.parse.urlencode(
        {
            "api-version": "2019-08-01",
            "resource": "https://management.azure.com",
            "client_id": DEPLOYER_CLIENT_ID,
        }
    )
    token_request = urllib.request.Request(
        f"{settings['IDENTITY_ENDPOINT']}?{query}",
        headers={"X-IDENTITY-HEADER": settings["IDENTITY_HEADER"], "Metadata": "true"},
    )
    with urllib.request.urlopen(token_request, timeout=10) as response:
        token = json.load(response)["access_token"]
    url = (
        f"{settings['LABIMAGE_ARM_ENDPOINT']}/subscriptions/{SUBSCRIPTION_ID}"
        f"/resourcegroups/{group}?api-version={RESOURCE_GROUP_API}"
    )
    request = urllib.request.Request(
        url,
        data=json.dumps({"location": LOCATION}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(layout.ca_pem))
    with urllib.request.urlopen(request, timeout=30, context=context):
        pass


def _print_endpoints(layout: Layout, ports: Ports, health: dict[str, bool] | None = None) -> None:
    addresses = endpoints(layout, ports)
    shown = {
        "functions": addresses["functions"],
        "arm": addresses["arm"],
        "identity": addresses["identity"],
        "vault": addresses["vault"],
        "git": addresses["git"],
        "azurite": f"{addresses['blob']} {addresses['queue']} {addresses['table']}",
    }
    for name, address in shown.items():
        if health is None:
            print(f"{name:10} {address}")
        else:
            print(f"{name:10} {'up' if health.get(name) else 'DOWN':5} {address}")
    print(f"{'state':10} {layout.state_dir}")
    print(f"{'env':10} {layout.env_file} (mode 0600: holds the identity secret)")
    print(f"{'ca':10} {layout.ca_pem}")


def up(
    layout: Layout,
    ports: Ports,
    app_dir: Path,
    records_only: bool = False,
    extra_settings: dict[str, str] | None = None,
    key_vault: bool = False,
    default_security_type: str = "Standard",
    first_boot_lock_s: float = 45.0,
    auth_settings: Path | None = None,
    arm_options: tuple[str, ...] = (),
) -> int:
    """Start every component (or do nothing when all answer) and write env.json.

    `extra_settings` are added to the Functions host's settings (for example
    APPLICATIONINSIGHTS_CONNECTION_STRING), overriding localcloud's own of the same name.
    `key_vault` hands the host LABIMAGE_KEY_VAULT_URL instead of LABIMAGE_SSH_KEY_DIR.
    `arm_options` go to the ARM emulator's command line (operation durations)."""
    recorded = read_env_file(layout)
    if recorded:
        old_ports = Ports(**recorded["ports"])
        # Without an app there is no Functions host to expect (up reports that as an error).
        skip = () if (app_dir / "function_app.py").exists() else ("functions",)
        if _all_answer(layout, old_ports, skip):
            print("localcloud is already up")
            _print_endpoints(layout, old_ports)
            return 0
    # Half up (a crash, or a failed earlier up): start clean.
    stop_instance(layout, quiet=True)
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    layout.keys_dir.mkdir(mode=0o700, exist_ok=True)
    layout.git_dir.mkdir(exist_ok=True)
    registry.register(layout.state_dir)
    settings = {
        **app_settings(layout, ports, _write_identity_header(layout), key_vault),
        **(extra_settings or {}),
    }
    started: list[str] = []
    write_env_file(layout, ports, settings, started)
    state = str(layout.state_dir)
    problems: list[str] = []

    print("starting Azurite", flush=True)
    _start_azurite(layout, ports)
    started.append("azurite")

    if _module_exists("localcloud.arm.__main__"):
        print("starting the Resource Manager emulator", flush=True)
        _write_authorization(settings, layout)
        _start_arm(
            layout, ports, records_only, default_security_type, first_boot_lock_s, arm_options
        )
        _create_resource_groups(settings, layout)
        started.append("arm")
    else:
        problems.append("the ARM emulator is not available (no localcloud.arm.__main__)")

    print("starting the git server", flush=True)
    proc = _start_python(
        layout, "git", "localcloud.gitserver", ["--state-dir", state, "--port", str(ports.git)], {}
    )
    _wait(
        "the git server",
        lambda: probes(layout, ports)["git"],
        proc,
        processes.log_path(layout.state_dir, "git"),
    )
    started.append("git")

    if (app_dir / "function_app.py").exists():
        print("starting the Functions host", flush=True)
        args = ["--app-dir", str(app_dir), "--port", str(ports.functions), "--state-dir", state]
        if auth_settings is not None:
            args += ["--auth-settings", str(auth_settings.resolve())]
        proc = _start_python(layout, "functions", "localcloud.funchost", args, settings)
        log = processes.log_path(layout.state_dir, "functions")
        _wait("the Functions host", lambda: probes(layout, ports)["functions"], proc, log)
        started.append("functions")
    else:
        problems.append(f"the Functions host was not started: no function_app.py in {app_dir}")

    write_env_file(layout, ports, settings, started)
    _print_endpoints(layout, ports)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _all_answer(layout: Layout, ports: Ports, skip: tuple[str, ...] = ()) -> bool:
    health = probes(layout, ports)
    return all(ok for name, ok in health.items() if name not in skip)


def status(layout: Layout) -> int:
    """Print each component and whether it answers; 0 when all do, 3 otherwise."""
    recorded = read_env_file(layout)
    if not recorded:
        print(f"localcloud is not up (no {layout.env_file})")
        return 3
    ports = Ports(**recorded["ports"])
    health = probes(layout, ports)
    _print_endpoints(layout, ports, health)
    return 0 if all(health.values()) else 3


def stop_instance(layout: Layout, quiet: bool = False) -> None:
    """Stop every process of the instance, also after a crash; safe to run twice."""
    state = layout.state_dir
    known = [p for name in COMPONENTS if (p := processes.live_pid(state, name))]
    processes.terminate(known)
    strays = processes.processes_naming(state)
    if strays and not quiet:
        print(f"stopping {len(strays)} more process(es) naming {state}")
    processes.terminate(strays)
    shutil.rmtree(processes.run_dir(state), ignore_errors=True)


def down(layout: Layout) -> int:
    """Stop the instance, tear down its sandboxes and remove its runtime files."""
    state = layout.state_dir
    print(f"stopping localcloud in {state}")
    stop_instance(layout)
    rc = 0
    if state.exists() and _module_exists("localcloud.sandbox.__main__"):
        result = subprocess.run(
            [sys.executable, "-m", "localcloud.sandbox", "teardown", "--state-dir", str(state)],
            env=_python_env(),
            cwd=REPO_ROOT,
            timeout=600,
        )
        if result.returncode != 0:
            print(f"error: sandbox teardown failed with {result.returncode}", file=sys.stderr)
            rc = 1
    layout.env_file.unlink(missing_ok=True)
    if rc == 0:
        registry.unregister(state)
    return rc


def _ports_from(args: argparse.Namespace) -> Ports:
    values: dict[str, int] = {}
    for f in fields(Ports):
        flag = getattr(args, f"{f.name}_port")
        env = os.environ.get(f"LOCALCLOUD_{f.name.upper()}_PORT")
        default = values["arm"] + 3 if f.name == "vault" else getattr(Ports(), f.name)
        values[f.name] = int(flag or env or default)
    return Ports(**values)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "status", "down", "token"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", DEFAULT_STATE_DIR)),
    )
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT, help="holds function_app.py")
    parser.add_argument("--all", action="store_true", help="down: every registered instance")
    parser.add_argument(
        "--purge", action="store_true", help="down: also remove the cached base images"
    )
    parser.add_argument(
        "--records-only", action="store_true", help="up: emulated VMs are records, not sandboxes"
    )
    for f in fields(Ports):
        default = "the ARM port + 3" if f.name == "vault" else getattr(Ports(), f.name)
        parser.add_argument(f"--{f.name}-port", type=int, help=f"default {default}")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="up: one more app setting for the Functions host (repeatable)",
    )
    parser.add_argument(
        "--key-vault",
        action="store_true",
        help="up: keep per-build SSH keys in the Key Vault emulator, not in <state>/keys",
    )
    parser.add_argument(
        "--auth-settings",
        type=Path,
        help="up: App Service authentication for the Functions host (authsettingsV2 JSON)",
    )
    parser.add_argument("--name", help="token: the principal's user name")
    parser.add_argument("--object-id", help="token: its object id (default: derived from --name)")
    parser.add_argument(
        "--role", action="append", default=[], help="token: an app role it holds (repeatable)"
    )
    parser.add_argument(
        "--faults",
        type=Path,
        metavar="PLAN.json",
        help="up: answer calls badly as this fault plan says (localcloud/faults.py); "
        "change it at run time with POST /localcloud/faults on the ARM port",
    )
    add_platform_options(parser, for_up=True)
    args = parser.parse_args(argv)
    if args.command == "up" and args.faults is not None:
        try:
            read_plan(args.faults)
        except (OSError, FaultPlanError) as error:
            parser.error(f"--faults: {error}")
    if args.command == "token" and not args.name:
        parser.error("token wants --name")
    for item in args.setting:
        if "=" not in item or not item.split("=", 1)[0].strip():
            parser.error(f"--setting wants NAME=VALUE, not {item!r}")
    return args


def _arm_options(args: argparse.Namespace) -> tuple[str, ...]:
    options: list[str] = []
    if args.lro_scale is not None:
        options += ["--lro-scale", str(args.lro_scale)]
    for item in args.lro_seconds:
        options += ["--lro-seconds", item]
    if args.faults is not None:
        options += ["--faults", str(args.faults.resolve())]
    return tuple(options)


def _extra_settings(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.setting)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = Layout(args.state_dir.resolve())
    if args.command == "up":
        try:
            return up(
                layout,
                _ports_from(args),
                args.app_dir.resolve(),
                args.records_only,
                _extra_settings(args),
                args.key_vault,
                args.default_security_type,
                args.first_boot_lock_seconds,
                args.auth_settings,
                _arm_options(args),
            )
        except (UpError, RuntimeError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            print(
                "the components that started are still running: `localcloud down` stops them",
                file=sys.stderr,
            )
            return 1
    if args.command == "status":
        return status(layout)
    if args.command == "token":
        print(mint_token(layout.funchost_dir, args.name, args.object_id, tuple(args.role)))
        return 0
    rc = 0
    if not args.all:
        rc = down(layout)
    else:
        folders = dict.fromkeys([*registry.registered(), layout.state_dir])
        for folder in folders:
            if folder.exists():
                rc |= down(Layout(folder))
            else:
                registry.unregister(folder)
    if args.purge:
        others = [str(f) for f in registry.registered() if f.exists()]
        if others:  # their VMs' roots lie on the cached trees
            print(f"keeping the base images: still in use by {', '.join(others)}", file=sys.stderr)
            return rc | 1
        print(f"removing the cached base images in {base_images.purge()}")
    return rc
