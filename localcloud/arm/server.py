"""Starting the emulator: TLS ARM port, plain-HTTP identity port, TLS Key Vault port, snapshots,
restart recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from localcloud.arm.app import build_app
from localcloud.arm.authz import Authorization
from localcloud.arm.certs import ensure_certificates, server_ssl_context
from localcloud.arm.emulator import Emulator, EmulatorSettings
from localcloud.arm.identity import TokenIssuer, build_identity_app
from localcloud.arm.keyvault import Vault, build_vault_app
from localcloud.arm.kinds.vms import VM
from localcloud.blob_fault_proxy import start_proxy
from localcloud.sandbox.api import VmRunner

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SNAPSHOT_INTERVAL_SECONDS = 0.5


@dataclass
class RunningEmulator:
    """A started emulator. Clients need `arm_url`, `ca_pem` and the identity settings."""

    emulator: Emulator
    issuer: TokenIssuer
    arm_url: str  # base_url for azure-mgmt-* clients
    identity_endpoint: str  # IDENTITY_ENDPOINT
    ca_pem: Path  # connection_verify for azure-mgmt-* clients (and the vault's SecretClient)
    vault_url: str  # LABIMAGE_KEY_VAULT_URL: Key Vault's secrets data plane (keyvault.py)
    _runners: tuple[web.AppRunner, ...]
    _saver: asyncio.Task[None]
    _dropper: asyncio.Task[None]

    @property
    def identity_header(self) -> str:
        """IDENTITY_HEADER (a secret: hand it to child processes, never log it)."""
        return self.issuer.identity_header

    def identity_env(self) -> dict[str, str]:
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
        }

    async def stop(self) -> None:
        """Finish running operations, write the snapshot, close both ports."""
        await self.emulator.operations.drain()
        for task in (self._saver, self._dropper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.emulator.store.save()
        for runner in self._runners:
            await runner.cleanup()


def recover_after_restart(emulator: Emulator) -> None:
    """Load the snapshot; sandboxes do not survive a restart, so their VMs are now stopped."""
    emulator.store.load()
    emulator.operations.fail_interrupted()
    for vm in emulator.store.of_type(VM):
        internal = vm.internal
        if internal.get("records_only"):
            continue
        if internal.get("power") in ("starting", "running", "stopping") and not (
            emulator.runner.is_running(internal["vm_key"])
        ):
            internal["power"] = "stopped"
        if vm.props.get("provisioningState") in ("Creating", "Updating", "Deleting"):
            vm.props["provisioningState"] = "Failed"
    emulator.store.touch()


async def start_emulator(
    settings: EmulatorSettings,
    runner: VmRunner,
    port: int = 0,
    identity_port: int = 0,
    vault_port: int = 0,
) -> RunningEmulator:
    """Start the three servers on 127.0.0.1 (port 0: any free port); say how to reach them."""
    arm_dir = settings.state_dir / "arm"
    certs = ensure_certificates(arm_dir)
    issuer = TokenIssuer.in_folder(arm_dir)
    if settings.authorization_file is not None:
        issuer.authorization = Authorization.from_file(settings.authorization_file)
    emulator = Emulator(settings, runner)
    await asyncio.to_thread(runner.prepare)
    recover_after_restart(emulator)

    arm_runner = web.AppRunner(build_app(emulator, issuer), access_log=None)
    await arm_runner.setup()
    arm_site = web.TCPSite(arm_runner, LOOPBACK, port, ssl_context=server_ssl_context(certs))
    await arm_site.start()
    id_runner = web.AppRunner(build_identity_app(issuer), access_log=None)
    await id_runner.setup()
    id_site = web.TCPSite(id_runner, LOOPBACK, identity_port)
    await id_site.start()

    vault = Vault(arm_dir / "keyvault.json", issuer, settings.vault_resource_id)
    vault.faults = emulator.faults
    vault_runner = web.AppRunner(build_vault_app(vault), access_log=None)
    await vault_runner.setup()
    vault_site = web.TCPSite(
        vault_runner, LOOPBACK, vault_port, ssl_context=server_ssl_context(certs)
    )
    await vault_site.start()
    vault.url = f"https://{LOOPBACK}:{_bound_port(vault_runner)}"

    runners = [arm_runner, id_runner, vault_runner]
    if settings.guest_blob_proxy is not None:
        runners.append(await start_proxy(emulator.faults, *settings.guest_blob_proxy))

    arm_port = _bound_port(arm_runner)
    id_port = _bound_port(id_runner)
    running = RunningEmulator(
        emulator=emulator,
        issuer=issuer,
        arm_url=f"https://{LOOPBACK}:{arm_port}",
        identity_endpoint=f"http://{LOOPBACK}:{id_port}/msi/token",
        ca_pem=certs.ca_pem,
        vault_url=vault.url,
        _runners=tuple(runners),
        _saver=asyncio.get_running_loop().create_task(_save_periodically(emulator)),
        _dropper=asyncio.get_running_loop().create_task(drop_ssh_periodically(emulator)),
    )
    _write_endpoints(arm_dir, running)
    return running


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = site._server  # aiohttp exposes the bound socket only here
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    raise RuntimeError("the site is not started")


def _write_endpoints(arm_dir: Path, running: RunningEmulator) -> None:
    """`<state>/arm/endpoints.json`: where to reach the emulator (no secrets inside)."""
    data = {
        "arm_url": running.arm_url,
        "identity_endpoint": running.identity_endpoint,
        "identity_header_file": str(arm_dir / "identity-header"),
        "ca_pem": str(running.ca_pem),
        "vault_url": running.vault_url,
    }
    proxy = running.emulator.settings.guest_blob_proxy
    if proxy is not None:  # where the VMs' Blob reads go (blob_fault_proxy.py)
        data["guest_blob_url"] = f"http://{LOOPBACK}:{proxy[0]}"
    (arm_dir / "endpoints.json").write_text(json.dumps(data, indent=2) + "\n")


async def _save_periodically(emulator: Emulator) -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_INTERVAL_SECONDS)
        if emulator.store.dirty:
            try:
                emulator.store.save()
            except OSError:
                logger.exception("could not write the ARM snapshot; retrying")


async def drop_ssh_periodically(emulator: Emulator) -> None:
    """The fault plan's SSH drops: every `ssh.everySeconds`, each running VM's open SSH
    connections are cut with the plan's `ssh.dropRate` (a runner without sandboxes has none)."""
    drop = getattr(emulator.runner, "drop_ssh", None)
    tick = 0
    while True:
        plan = emulator.faults.plan
        await asyncio.sleep(plan.ssh.every_seconds if plan.ssh.drop_rate > 0 else 1.0)
        if drop is None or plan.ssh.drop_rate <= 0:
            continue
        tick += 1
        for vm in emulator.store.of_type(VM):
            key = vm.internal.get("vm_key")
            if not key or vm.internal.get("power") != "running":
                continue
            if not emulator.faults.ssh_drop_due(str(vm.body.get("name", key)), tick):
                continue
            try:
                cut = await asyncio.to_thread(drop, key)
            except OSError:
                logger.exception("could not cut the SSH connections of %s", key)
                continue
            if cut:
                logger.info("fault plan: cut %d SSH connection process(es) of %s", cut, key)
                emulator.faults.count(f"ssh_drop {vm.body.get('name', key)}")


async def serve_forever(
    settings: EmulatorSettings, runner: VmRunner, port: int, identity_port: int, vault_port: int
) -> None:
    """Run until cancelled (Ctrl-C / SIGTERM), then stop cleanly."""
    running = await start_emulator(settings, runner, port, identity_port, vault_port)
    print(
        f"ARM emulator on {running.arm_url} (CA {running.ca_pem}); managed identity on "
        f"{running.identity_endpoint}; Key Vault on {running.vault_url}; IDENTITY_HEADER in "
        f"{settings.state_dir / 'arm' / 'identity-header'}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()
