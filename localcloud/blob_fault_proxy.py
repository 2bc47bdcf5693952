"""The fault plan (localcloud.faults) applied to a guest's reads of Blob storage.

A sandbox VM reaches Azurite's Blob port through its relay (localcloud/sandbox/relay.py); the
ARM emulator points that relay here instead of at Azurite, and this layer passes every request
on to Azurite unchanged, unless the plan gives its key (`BLOB <METHOD>`) a fault. The
controller's own Storage traffic (tables, queues, its Blob writes) goes to Azurite directly and
never passes here. Nothing in it knows who the guest is or what it reads.

Storage's answers, as Azure Storage gives them:
- error bodies are `<?xml ...?><Error><Code>..</Code><Message>..</Message></Error>` with the code
  also in `x-ms-error-code` (learn.microsoft.com/rest/api/storageservices/status-and-error-codes2);
- `InternalError` is a 500 and `ServerBusy` a 503 (common-rest-api-error-codes);
- Storage throttles with 503 Server Busy (or 500 Operation Timeout), never 429, and asks
  clients for exponential backoff; it sends no Retry-After (learn.microsoft.com/azure/storage/
  blobs/scalability-targets, "When your application reaches the limit of what a partition can
  handle ... 503 (Server Busy) or ... 500 (Operation Timeout)").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from yarl import URL

from localcloud.arm.fault_layer import reset_connection
from localcloud.cut_answer import answer_then_cut
from localcloud.faults import Fault, FaultInjector

# Hop-by-hop headers (RFC 9110 section 7.6.1) and those aiohttp sets itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_ERRORS = {
    # (status, code, message) per kind
    "server_error_500": (
        500,
        "InternalError",
        "The server encountered an internal error. Please retry the request.",
    ),
    "server_error_503": (
        503,
        "ServerBusy",
        "The server is currently unable to receive requests. Please retry your request.",
    ),
    "throttle": (503, "ServerBusy", "Egress is over the account limit."),
}
CHUNK = 64 * 1024
_SESSION = web.AppKey("session", aiohttp.ClientSession)


def blob_key(method: str) -> str:
    return f"BLOB {method.upper()}"


def storage_error(status: int, code: str, message: str) -> web.Response:
    """An error as Blob storage answers one (XML body, x-ms-error-code, x-ms-request-id)."""
    request_id = str(uuid.uuid4())
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}\n"
        f"RequestId:{request_id}</Message></Error>"
    )
    return web.Response(
        status=status,
        body=body.encode(),
        content_type="application/xml",
        headers={"x-ms-error-code": code, "x-ms-request-id": request_id},
    )


def _refusal(fault: Fault) -> web.Response:
    key = "throttle" if fault.kind == "throttle" else f"server_error_{fault.status}"
    return storage_error(*_ERRORS[key])


def build_proxy_app(injector: FaultInjector, upstream_port: int) -> web.Application:
    """Pass every request to 127.0.0.1:`upstream_port`, with the plan's BLOB faults."""

    async def session(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as client:
            app[_SESSION] = client
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        fault = injector.decide(blob_key(request.method))
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.when == "before":
            if fault.kind == "reset":
                reset_connection(request)
                return web.Response(status=500)  # never reaches the client
            return _refusal(fault)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = URL(f"http://127.0.0.1:{upstream_port}{request.raw_path}", encoded=True)
        body = await request.read() if request.body_exists else None
        async with request.app[_SESSION].request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            length = upstream.content_length if request.method != "HEAD" else 0
            chunks = upstream.content.iter_chunked(CHUNK)
            if fault is not None:  # a reset after: the read is cut mid-body
                return await answer_then_cut(request, upstream.status, out, length, chunks)
            response = web.StreamResponse(status=upstream.status, headers=out)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=1024**3)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def start_proxy(
    injector: FaultInjector, listen_port: int, upstream_port: int
) -> web.AppRunner:
    """Serve the layer on 127.0.0.1:`listen_port` (0: any free port); the caller cleans up."""
    runner = web.AppRunner(build_proxy_app(injector, upstream_port), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", listen_port).start()
    return runner
