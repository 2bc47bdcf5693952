"""One auto-stop scan over 10,000 VMs: wall time and Resource Manager calls.

Starts its own ARM emulator (a child process, --records-only: VMs are records, no sandboxes)
and its own Azurite on free loopback ports, adds the record VMs spread over resource groups
with a mix of tags (due, not yet due, off, exempt, malformed, untagged), runs one scan with
bounded concurrency exactly as the timer does (stop messages go to the Azurite queue), and
prints the figures. Everything it started is stopped on exit.

    python bench/autostop_scan.py [--vms 10000] [--groups 4] [--concurrency 8] [--port 24443]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from azure.core.pipeline.policies import SansIOHTTPPolicy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localcloud import azurite  # noqa: E402
from shared.azure.clients import AzureClients  # noqa: E402
from shared.bus import QueueBus  # noqa: E402
from shared.costguard.autostop import AUTOSTOP_QUEUE, scan_autostop  # noqa: E402
from shared.settings import Settings  # noqa: E402

SUB = "00000000-0000-0000-0000-00000000be4c"
LOCATION = "westeurope"


class CallCounter(SansIOHTTPPolicy):
    """Counts every HTTP request the azure-mgmt clients send (retries included)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def on_request(self, request: Any) -> None:
        with self._lock:
            self.count += 1


@dataclass
class CountingClients(AzureClients):
    counter: CallCounter | None = None

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs = super()._client_kwargs()
        kwargs["per_retry_policies"] = [self.counter]
        return kwargs


def tag_mix(index: int, now: datetime) -> dict[str, str]:
    """A sixth of the VMs each: due (Tokyo, Berlin), later, off, exempt, malformed or untagged."""
    past_utc = (now - timedelta(minutes=10)).strftime("%H:%M")
    later = (now + timedelta(hours=3)).strftime("%H:%M")
    tokyo = (now + timedelta(hours=9, minutes=-10)).strftime("%H:%M")
    kind = index % 6
    if kind == 0:
        return {"labimage-autostop": f"{tokyo} Asia/Tokyo"}
    if kind == 1:
        return {"labimage-autostop": f"{past_utc} UTC"}
    if kind == 2:
        return {"labimage-autostop": f"{later} UTC"}
    if kind == 3:
        return {"labimage-autostop": "off"}
    if kind == 4:
        return {"labimage-autostop": "7pm Mars/Olympus"}
    return {}


def wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout_s} s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=24443, help="ARM port; identity on port+1")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="bench-autostop-"))
    ports = azurite.AzuritePorts(azurite.free_port(), azurite.free_port(), azurite.free_port())
    storage = azurite.start(state / "azurite", ports, log=state / "azurite.log")
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localcloud.arm",
            "--state-dir",
            str(state / "lc"),
            "--port",
            str(args.port),
            "--identity-port",
            str(args.port + 1),
            "--records-only",
            "--retry-after",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(state / "arm.log", "wb"),  # noqa: SIM115
    )
    try:
        endpoints_file = state / "lc" / "arm" / "endpoints.json"
        wait_for(endpoints_file)
        endpoints = json.loads(endpoints_file.read_text())
        os.environ["IDENTITY_ENDPOINT"] = endpoints["identity_endpoint"]
        os.environ["IDENTITY_HEADER"] = Path(endpoints["identity_header_file"]).read_text().strip()
        groups = tuple(f"bench-rg-{g}" for g in range(args.groups))
        settings = Settings(
            storage_connection=azurite.connection_string(ports),
            data_storage_connection=azurite.connection_string(ports),
            subscription_id=SUB,
            resource_group=groups[0],
            location=LOCATION,
            arm_endpoint=endpoints["arm_url"],
            arm_ca_bundle=endpoints["ca_pem"],
            autostop_scope=groups,
        )
        counter = CallCounter()
        azure = CountingClients(settings, counter)
        token = azure.credential.get_token(settings.arm_scope).token
        now = datetime.now(UTC)
        per_group = args.vms // args.groups
        start = time.monotonic()
        for g, group in enumerate(groups):
            # One records call per tag kind per group (the admin route takes one tag set).
            for kind in range(6):
                names = [f"vm-{g}-{i:05d}" for i in range(per_group) if i % 6 == kind]
                response = requests.post(
                    f"{settings.arm_endpoint}/localcloud/records",
                    json={
                        "subscription": SUB,
                        "resourceGroup": group,
                        "location": LOCATION,
                        "names": names,
                        "tags": tag_mix(kind, now),
                    },
                    headers={"authorization": f"Bearer {token}"},
                    verify=settings.arm_ca_bundle,
                    timeout=120,
                )
                response.raise_for_status()
        print(f"added {per_group * args.groups} record VMs in {time.monotonic() - start:.1f} s")

        bus = QueueBus.from_connection_string(settings.storage_connection)
        bus.client(AUTOSTOP_QUEUE)  # made before timing, as the deployed queue exists
        counter.count = 0
        start = time.monotonic()
        result = scan_autostop(
            azure,
            groups,
            now,
            lambda body: bus.send_raw(AUTOSTOP_QUEUE, body),
            concurrency=args.concurrency,
        )
        wall = time.monotonic() - start
        queued = bus.client(AUTOSTOP_QUEUE).get_queue_properties().approximate_message_count
        print(
            json.dumps(
                {
                    "vms": result.scanned,
                    "groups": args.groups,
                    "concurrency": args.concurrency,
                    "in_scope": result.in_scope,
                    "stops_queued": len(result.queued),
                    "queue_length": queued,
                    "not_due": result.not_due,
                    "problems": len(result.problems),
                    "arm_calls": counter.count,
                    "wall_s": round(wall, 2),
                },
                indent=2,
            )
        )
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()
        storage.terminate()
        try:
            storage.wait(timeout=10)
        except subprocess.TimeoutExpired:
            storage.kill()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
