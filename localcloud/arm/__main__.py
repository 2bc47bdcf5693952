"""`python -m localcloud.arm --state-dir DIR --port 8443 --identity-port 8444 --vault-port 8446
[--records-only] [--subnet 10.213.0.0/16] [--authorization-file roles.json]
[--default-security-type Standard|TrustedLaunch] [--first-boot-lock-seconds 45]
[--faults PLAN.json]`"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from localcloud.arm.durations import parse_override
from localcloud.arm.emulator import EmulatorSettings
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.options import add_platform_options
from localcloud.arm.server import serve_forever
from localcloud.azurite import free_port
from localcloud.faults import FaultPlanError, read_plan
from localcloud.sandbox.api import VmRunner


def _runner(args: argparse.Namespace, relay_routes: list[tuple[int, int]]) -> VmRunner:
    if args.records_only:
        try:
            from localcloud.sandbox.host import RecordsOnly

            return RecordsOnly()
        except ImportError:
            return MemoryRunner()
    from localcloud.sandbox.host import SandboxHost

    return SandboxHost(
        args.state_dir,
        subnet=args.subnet,
        relay_ports=[*(args.relay_port or ()), *relay_routes],
        extra_ca_pem=args.extra_ca_pem.read_bytes() if args.extra_ca_pem else None,
        first_boot_lock_s=args.first_boot_lock_seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud.arm", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--identity-port", type=int, default=8444)
    parser.add_argument("--vault-port", type=int, default=8446, help="Key Vault (secrets)")
    parser.add_argument("--records-only", action="store_true", help="VMs are records, no sandboxes")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument(
        "--retry-after", type=int, default=1, help="whole seconds between LRO polls (0: omit)"
    )
    parser.add_argument("--relay-port", type=int, action="append", help="passed to SandboxHost")
    parser.add_argument(
        "--guest-blob-port",
        type=int,
        help="Blob storage's port: a VM's 127.0.0.1:<port> reaches it through the Blob fault "
        "layer (BLOB rules of the fault plan); the host's own traffic goes there directly",
    )
    parser.add_argument("--extra-ca-pem", type=Path, help="passed to SandboxHost")
    parser.add_argument(
        "--subnet", default="10.213.0.0/16", help="the sandboxes' address range (SandboxHost)"
    )
    parser.add_argument(
        "--authorization-file",
        type=Path,
        help="role definitions, principals and assignments to enforce (default: allow all)",
    )
    parser.add_argument(
        "--vault-resource-id", help="the vault's ARM id, for role checks on its secrets"
    )
    parser.add_argument(
        "--faults", type=Path, help="a fault plan (JSON, localcloud/faults.py); default: none"
    )
    add_platform_options(parser)
    args = parser.parse_args()
    try:
        faults = read_plan(args.faults) if args.faults else None
    except (OSError, FaultPlanError) as error:
        parser.error(f"--faults: {error}")
    try:
        lro_seconds = dict(parse_override(item) for item in args.lro_seconds)
    except ValueError as error:
        parser.error(f"--lro-seconds: {error}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    args.state_dir = state_dir
    # The Blob fault layer's own port, fixed now so the VMs' relays can be pointed at it.
    proxy: tuple[int, int] | None = None
    if args.guest_blob_port:
        proxy = (free_port(), args.guest_blob_port)
    settings = EmulatorSettings(
        state_dir=state_dir,
        guest_blob_proxy=proxy,
        page_size=args.page_size,
        retry_after=args.retry_after,
        records_only=args.records_only,
        authorization_file=args.authorization_file,
        vault_resource_id=args.vault_resource_id,
        default_security_type=args.default_security_type,
        lro_scale=args.lro_scale,
        lro_seconds=lro_seconds,
        faults=faults,
    )

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve_forever(
                settings,
                _runner(args, [(proxy[1], proxy[0])] if proxy else []),
                args.port,
                args.identity_port,
                args.vault_port,
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
