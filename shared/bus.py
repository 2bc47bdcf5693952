"""Stage messages on Storage queues, base64-encoded as the Functions host expects."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    QueueServiceClient,
)

from shared.settings import connection_has_secret, service_endpoint
from shared.state.machine import Stage, queue_name

MAX_VISIBILITY_DELAY_S = 7 * 24 * 3600 - 1


@dataclass(frozen=True)
class StageMessage:
    """The only thing a queue carries: which build, which stage, which hop. No secrets."""

    build_id: str
    stage: Stage
    token: str

    def to_json(self) -> str:
        return json.dumps(
            {"build_id": self.build_id, "stage": self.stage.value, "token": self.token}
        )

    @classmethod
    def from_json(cls, body: str | bytes) -> StageMessage:
        data = json.loads(body)
        return cls(
            build_id=str(data["build_id"]), stage=Stage(data["stage"]), token=str(data["token"])
        )


class QueueBus:
    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}

    @classmethod
    def from_connection_string(
        cls, connection: str, credential: TokenCredential | None = None
    ) -> QueueBus:
        """A bus on the connection's account; a key-less connection signs in with `credential`."""
        if connection_has_secret(connection) or credential is None:
            return cls(QueueServiceClient.from_connection_string(connection))
        url = service_endpoint(connection, "queue")
        return cls(QueueServiceClient(account_url=url, credential=credential))

    def client(self, name: str) -> QueueClient:
        if name not in self._clients:
            client = self._service.get_queue_client(
                name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                message_decode_policy=BinaryBase64DecodePolicy(),
            )
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._clients[name] = client
        return self._clients[name]

    def send(self, message: StageMessage, delay_s: float = 0) -> None:
        """Enqueue a stage message, invisible for `delay_s` seconds (polling a long operation)."""
        self.send_raw(queue_name(message.stage), message.to_json(), delay_s)

    def reply(self, queue: str, body: str) -> bool:
        """Send to a queue someone else made (a submitter's reply_to): it is never created here
        and its client is not kept, so a message cannot make the controller create queues or
        hold clients for names of its choosing. False when the queue does not exist."""
        client = self._service.get_queue_client(
            queue,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )
        try:
            client.send_message(body.encode())
        except ResourceNotFoundError:
            return False
        return True

    def send_raw(self, queue: str, body: str, delay_s: float = 0) -> None:
        delay = max(0, min(round(delay_s), MAX_VISIBILITY_DELAY_S))
        self.client(queue).send_message(body.encode(), visibility_timeout=delay or None)
