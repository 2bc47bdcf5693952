"""Queue clients shared by the host's listeners and output bindings, and message encoding."""

from __future__ import annotations

import base64
import binascii
import contextlib

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient


class QueueClients:
    """One async QueueClient per (connection string, queue name), closed together."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._created: set[tuple[str, str]] = set()

    def get(self, connection: str, queue_name: str) -> QueueClient:
        key = (connection, queue_name)
        if key not in self._clients:
            # No encode/decode policy: the host decodes per host.json itself, like the real one.
            self._clients[key] = QueueClient.from_connection_string(connection, queue_name)
        return self._clients[key]

    async def ensure_queue(self, connection: str, queue_name: str) -> QueueClient:
        """The client of a queue that exists (created once per host run if missing)."""
        client = self.get(connection, queue_name)
        key = (connection, queue_name)
        if key not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._created.add(key)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def encode_body(body: str | bytes, encoding: str) -> str:
    """The queue message text for `body` under host.json's messageEncoding."""
    raw = body.encode() if isinstance(body, str) else body
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


def decode_body(text: str, encoding: str) -> bytes:
    """The body bytes of a stored message text; raises ValueError when it is not valid base64."""
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as err:
            raise ValueError(
                "message is not base64; set extensions.queues.messageEncoding to none"
            ) from err
    return text.encode("utf-8")
