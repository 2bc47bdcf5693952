"""Azurite, the real storage emulator from npm, started as a child process."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

AZURITE_BIN = Path(__file__).resolve().parent / "node_modules" / ".bin" / "azurite"

# Azurite's fixed development account; public knowledge, documented by Microsoft.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class AzuritePorts:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002


def connection_string(ports: AzuritePorts, host: str = "127.0.0.1") -> str:
    """A connection string naming each endpoint, as the controller reads it."""
    base = f"http://{host}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{ports.blob}/{ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{ports.queue}/{ACCOUNT_NAME};"
        f"TableEndpoint={base}:{ports.table}/{ACCOUNT_NAME};"
    )


def command(location: Path, ports: AzuritePorts) -> list[str]:
    return [
        str(AZURITE_BIN),
        "--silent",
        "--skipApiVersionCheck",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports.blob),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports.queue),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports.table),
    ]


def start(location: Path, ports: AzuritePorts, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Azurite and return once all three services accept connections."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: run `make setup`")
    location.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        command(location, ports), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_ports([ports.blob, ports.queue, ports.table], proc)
    return proc


def wait_for_ports(ports: list[int], proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                code = proc.returncode
                raise RuntimeError(f"Azurite exited with {code} before port {port} opened")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not open port {port} in {timeout} s") from None
                time.sleep(0.1)


# Below Linux's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default): a port
# the kernel hands to an outgoing connection between our check and the real bind would make the
# bind fail ("address already in use"), as a port from bind(0) can. Above Azurite's 10000-10002.
FREE_PORT_RANGE = (11000, 19999)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, drawn from FREE_PORT_RANGE."""
    low, high = FREE_PORT_RANGE
    for _ in range(500):
        port = low + secrets.randbelow(high - low + 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high} on 127.0.0.1")
