"""`labimage submit --queue`: send the request to the build-requests queue and wait for the
answer on a reply queue of its own.

The queue is reached with a connection string (`LABIMAGE_QUEUE_CONNECTION`), or on Azure with
the account's queue URL (`LABIMAGE_QUEUE_URL`, for example https://<account>.queue.core.windows.net)
and your Azure sign-in (azure-identity; you need Storage Queue Data Contributor). The message
carries the idempotency key as client_request_id, so sending it again never makes two builds.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

CONNECTION_ENV = "LABIMAGE_QUEUE_CONNECTION"
URL_ENV = "LABIMAGE_QUEUE_URL"
REQUESTS_QUEUE = "build-requests"


class QueueTimedOut(Exception):
    """No answer came on the reply queue in time."""


class NoQueue(ValueError):
    """Neither a connection string nor a queue URL is configured."""


@dataclass(frozen=True)
class QueueSubmitter:
    connection: str | None = field(default=None, repr=False)  # may hold an account key
    url: str | None = None
    queue: str = REQUESTS_QUEUE

    @classmethod
    def from_environment(cls, queue: str = REQUESTS_QUEUE) -> QueueSubmitter:
        connection = os.environ.get(CONNECTION_ENV) or None
        url = os.environ.get(URL_ENV) or None
        if not connection and not url:
            raise NoQueue(f"--queue needs {CONNECTION_ENV} or {URL_ENV}")
        return cls(connection, url, queue)

    def _client(self, name: str) -> QueueClient:
        options: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
        if self.connection:
            return QueueClient.from_connection_string(self.connection, name, **options)
        from azure.identity import DefaultAzureCredential

        return QueueClient(str(self.url), name, credential=DefaultAzureCredential(), **options)

    def submit(self, request: bytes, key: str, timeout_s: float = 120) -> dict[str, Any]:
        """Send the request; the first answer on the reply queue ({status, id, ...}). The reply
        queue is this call's own and is deleted before it returns: the build's outcome is
        followed through the API (`--wait`, `labimage watch`), and the controller's later
        outcome message to a queue that is gone is dropped with a log line."""
        reply_name = f"labimage-reply-{uuid.uuid4().hex[:12]}"
        replies = self._client(reply_name)
        with contextlib.suppress(ResourceExistsError):
            replies.create_queue()
        try:
            return self._send_and_wait(replies, request, key, timeout_s)
        finally:
            with contextlib.suppress(ResourceNotFoundError):
                replies.delete_queue()

    def _send_and_wait(
        self, replies: QueueClient, request: bytes, key: str, timeout_s: float
    ) -> dict[str, Any]:
        envelope = {
            "request": json.loads(request),
            "client_request_id": key,
            "reply_to": replies.queue_name,
        }
        try:
            self._client(self.queue).send_message(json.dumps(envelope))
        except ResourceNotFoundError:
            raise NoQueue(f"the queue {self.queue} does not exist on that account") from None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in replies.receive_messages(max_messages=1):
                answer: dict[str, Any] = json.loads(message.content)
                return answer
            time.sleep(0.5)
        raise QueueTimedOut(f"no answer on {replies.queue_name} in {timeout_s:.0f} s")
