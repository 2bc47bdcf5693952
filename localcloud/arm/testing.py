"""Run the emulator in a background thread, for tests that use the synchronous Azure SDK."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localcloud.arm.emulator import EmulatorSettings
from localcloud.arm.memory_runner import MemoryRunner
from localcloud.arm.server import RunningEmulator, start_emulator
from localcloud.sandbox.api import VmRunner


class EmulatorThread:
    """An emulator on its own event loop; `call` runs a coroutine function on that loop."""

    def __init__(self, settings: EmulatorSettings, runner: VmRunner) -> None:
        self.settings = settings
        self.runner = runner
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.running: RunningEmulator | None = None

    def start(self) -> RunningEmulator:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_emulator(self.settings, self.runner), self.loop
        )
        self.running = future.result(timeout=30)
        return self.running

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.running is not None:
            self.call(self.running.stop())
            self.running = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def post_admin(running: RunningEmulator, route: str, body: Any) -> Any:
    """POST `body` to the admin route `/localcloud/<route>` (for example a fault plan to
    `faults`), signed in with the emulator's managed identity; the JSON answer."""
    import requests
    from azure.identity import ManagedIdentityCredential

    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    reply = requests.post(
        f"{running.arm_url}/localcloud/{route}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(running.ca_pem),
        timeout=30,
    )
    reply.raise_for_status()
    return reply.json()


@contextmanager
def emulator_in_thread(
    state_dir: Path, runner: VmRunner | None = None, **settings: Any
) -> Iterator[tuple[RunningEmulator, EmulatorThread]]:
    """Start an emulator on free loopback ports; stop it (and save its snapshot) on exit."""
    thread = EmulatorThread(
        EmulatorSettings(state_dir=state_dir, **settings), runner or MemoryRunner()
    )
    running = thread.start()
    try:
        yield running, thread
    finally:
        thread.stop()
