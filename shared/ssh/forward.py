"""A local port forward through the SSH connection: the seed's `ssh -N -L 7005:localhost:8889`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncssh

from shared.ssh.errors import SshConnectionError
from shared.ssh.runner import SshRunner


@asynccontextmanager
async def forward_local_port(
    runner: SshRunner, remote_port: int, remote_host: str = "localhost"
) -> AsyncIterator[int]:
    """Listen on a free 127.0.0.1 port here, forward it to `remote_host:remote_port` as the guest
    sees it, and yield the local port. The listener closes when the block ends."""
    try:
        listener = await runner.conn.forward_local_port("127.0.0.1", 0, remote_host, remote_port)
    except (asyncssh.Error, OSError) as exc:
        raise SshConnectionError(
            f"port forward to {runner.target.host}:{remote_port} failed: {type(exc).__name__}"
        ) from None
    try:
        yield listener.get_port()
    finally:
        listener.close()
        await listener.wait_closed()
