"""A reply cut mid-transfer: the status, the headers and part of the body go out, then the
connection is reset (RST), as a link that drops during a download does. Used by the git server
and the Blob fault layer for a `reset` rule with `when: "after"` (localcloud.faults)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import termios
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from localcloud.arm.fault_layer import reset_connection


def cut_after(length: int | None) -> int:
    """How many body bytes go out before the cut: half of them (none of an empty or unknown
    length, so the client sees only headers)."""
    return max(length // 2, 1) if length else 0


async def answer_then_cut(
    request: web.Request,
    status: int,
    headers: Mapping[str, str],
    length: int | None,
    body: AsyncIterator[bytes],
) -> web.StreamResponse:
    """Send `status`, `headers` (with Content-Length `length` when known) and the first
    cut_after(length) bytes of `body`, then reset the client's connection."""
    response = web.StreamResponse(status=status, headers=headers)
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    left = cut_after(length)
    async for chunk in body:
        if left <= 0:
            break
        await response.write(chunk[:left])
        left -= len(chunk[:left])
    await _sent(request)
    reset_connection(request)
    return response


async def _sent(request: web.Request, within: float = 2.0) -> None:
    """Wait (at most `within` s) until what was written has left this host: a reset throws
    away what aiohttp and the kernel still hold, and the client would see no body at all."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        unsent = transport.get_write_buffer_size()
        if sock is not None:
            with contextlib.suppress(OSError):
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                unsent += struct.unpack("i", queued)[0]  # SIOCOUTQ: not yet acknowledged
        if unsent == 0:
            return
        await asyncio.sleep(0.01)
