"""Per-VM relay: the VM's own 127.0.0.1:<port> reaches the host's 127.0.0.1:<port>.

Run by the host as `python3 relay.py <netns path> <watch pid> <port>...`; a `<port>:<host port>`
argument relays the VM's <port> to another host port (a fault layer in front of the service).
The listening sockets
are created inside the VM's network namespace (a socket keeps the namespace it was made in),
the outgoing connections are made from the host namespace, so no host service is exposed on
any other address. Exits when the process `watch pid` (the VM's init) is gone.
Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable

CLONE_NEWNET = 0x40000000


def setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def listeners_in(netns_path: str, ports: list[int]) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 of the VM's netns; the thread returns to the host netns."""
    own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    home = os.open(own, os.O_RDONLY)
    try:
        setns(netns_path)
        socks = []
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(128)
            s.setblocking(False)
            socks.append(s)
        return socks
    finally:
        setns(f"/proc/self/fd/{home}")
        os.close(home)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


def handler(port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    return handle


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def route(arg: str) -> tuple[int, int]:
    """(the VM's port, the host's port) of a `<port>` or `<port>:<host port>` argument."""
    listen, _, upstream = arg.partition(":")
    return int(listen), int(upstream or listen)


async def serve(netns_path: str, watch_pid: int, routes: list[tuple[int, int]]) -> None:
    ports = [listen for listen, _ in routes]
    servers = [
        await asyncio.start_server(handler(upstream), sock=sock)
        for (_, upstream), sock in zip(routes, listeners_in(netns_path, ports), strict=True)
    ]
    print("ready", flush=True)
    while alive(watch_pid):
        await asyncio.sleep(0.5)
    for server in servers:
        server.close()


def main() -> None:
    netns_path, watch_pid, *ports = sys.argv[1:]
    asyncio.run(serve(netns_path, int(watch_pid), [route(p) for p in ports]))


if __name__ == "__main__":
    main()
