"""A stand-in for Application Insights ingestion: accepts Breeze `/v2.1/track` POSTs on 127.0.0.1.

It keeps every envelope it receives (and the raw bodies, to scan for secrets) and answers as
the service does, so the exporter counts each item as accepted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from typing import Any

from aiohttp import web

from localcloud.azurite import free_port

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-0000000a1b2c"


class IngestionStub:
    """`with IngestionStub() as stub:` a server on a free loopback port, in its own thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.envelopes: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def connection_string(self) -> str:
        endpoint = f"http://127.0.0.1:{self.port}/"
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={endpoint}"

    async def _track(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body[:2] == b"\x1f\x8b" or request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode("utf-8", "replace")
        stripped = text.strip()
        if stripped.startswith("["):
            items = json.loads(stripped)
        else:  # newline-delimited JSON
            items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        with self._lock:
            self.raw.append(text)
            self.envelopes.extend(items)
        return web.json_response(
            {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
        )

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # The exporter joins the endpoint and "/v2.1/track" as they come (a double slash too).
        app.router.add_route("POST", "/{path:.*track}", self._track)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> IngestionStub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def snapshot(self) -> tuple[list[dict[str, Any]], str]:
        """The envelopes so far, and every raw body joined (for secret scans)."""
        with self._lock:
            return list(self.envelopes), "\n".join(self.raw)

    def spans(self) -> list[dict[str, Any]]:
        """Request and dependency items (spans), as `baseData` dicts."""
        envelopes, _ = self.snapshot()
        kinds = {"RequestData", "RemoteDependencyData"}
        return [
            e["data"]["baseData"] for e in envelopes if e.get("data", {}).get("baseType") in kinds
        ]


# What every process exporting to the stub needs, so nothing leaves this machine: no
# statsbeat, no remote configuration, no instance-metadata probe.
OFFLINE_SETTINGS = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
    # Export spans promptly (the default waits up to 5 s per batch).
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}
