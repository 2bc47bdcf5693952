"""The build-requests queue on localcloud: a refused request is recorded and answered, and a
message that is not JSON ends in the poison queue without stopping anything."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from tests.e2e.conftest import Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _queue(cloud: Cloud, name: str, encode: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if encode else None
    client = QueueClient.from_connection_string(
        cloud.settings.storage_connection, name, message_encode_policy=policy
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def _wait_for(client: QueueClient, timeout_s: float) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list(client.receive_messages(max_messages=32))
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"nothing arrived on {client.queue_name} in {timeout_s} s")


def test_a_refused_queue_request_is_recorded_answered_and_listed(cloud: Cloud) -> None:
    reply_to = f"replies-{uuid.uuid4().hex[:8]}"
    replies = _queue(cloud, reply_to)
    bad = {**cloud.seed_request(), "colour": "blue"}
    envelope = {"request": bad, "client_request_id": "e2e-bad-1", "reply_to": reply_to}
    _queue(cloud, "build-requests").send_message(json.dumps(envelope))
    [message] = _wait_for(replies, 60)
    answer = json.loads(base64.b64decode(message.content))
    assert answer["status"] == "rejected"
    assert "colour" in [p["field"] for p in answer["problems"]]
    code, listed = cloud.request("GET", "/api/builds?state=rejected")
    assert code == 200
    assert answer["id"] in [b["id"] for b in listed["builds"]]
    replies.delete_queue()


def test_an_undecodable_message_goes_to_poison(cloud: Cloud) -> None:
    marker = f"not json {uuid.uuid4().hex}"
    _queue(cloud, "build-requests").send_message(marker)
    poison = _queue(cloud, "build-requests-poison")
    # host.json: 5 deliveries, 15 s apart.
    deadline = time.monotonic() + 150
    seen: list[str] = []
    while time.monotonic() < deadline and marker not in seen:
        seen += [base64.b64decode(m.content).decode() for m in poison.peek_messages(32)]
        time.sleep(2)
    assert marker in seen
    code, _ = cloud.request("GET", "/api/builds")
    assert code == 200  # the host goes on
