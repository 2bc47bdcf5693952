"""Submissions from the build-requests queue through the Functions app, on Azurite: the same
validation and insert as HTTP, rejected requests recorded and answered, replies on reply_to."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueServiceClient
from test_function_app import SEED, app_runtime, call, functions, http  # noqa: F401

from shared.api import queue_submit
from shared.api.queue_submit import UndecodableMessage, usable_reply_queue
from shared.bus import StageMessage
from shared.pipeline import fail_from_poison
from shared.runtime import Runtime
from shared.state.machine import Stage
from shared.state.record import Build, BuildState
from tests.principals import ADMIN, ALICE


@pytest.fixture
def queue_rt(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:  # noqa: F811
    monkeypatch.setattr("functions.submissions.get_runtime", lambda: app_runtime)
    return app_runtime


def deliver(functions: dict[str, Any], body: bytes, message_id: str = "m-1") -> None:  # noqa: F811
    call(functions, "submit_from_queue")(QueueMessage(id=message_id, body=body, dequeue_count=1))


def replies(rt: Runtime, queue: str) -> list[dict[str, Any]]:
    found = rt.bus.client(queue).receive_messages(max_messages=32)
    return [json.loads(bytes(m.content)) for m in found]


def reply_queue(rt: Runtime) -> str:
    """A reply queue made by its submitter, as a submitter must (the controller makes none)."""
    name = f"replies-{uuid.uuid4().hex[:8]}"
    rt.bus.client(name)
    return name


def wrapped(request: Any, client_id: str, reply_to: str) -> bytes:
    return json.dumps(
        {"request": request, "client_request_id": client_id, "reply_to": reply_to}
    ).encode()


def test_a_queued_request_becomes_one_build_and_is_answered(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    reply_to = reply_queue(queue_rt)
    message = wrapped(json.loads(SEED), "pipeline-run-7", reply_to)
    deliver(functions, message, "m-1")
    deliver(functions, message, "m-2")  # delivered again: the same client_request_id
    builds = queue_rt.store.list(page_size=10).builds
    assert len(builds) == 1 and builds[0].owner == "alice@example.org"
    answers = replies(queue_rt, reply_to)
    assert [a["status"] for a in answers] == ["accepted", "accepted"]
    assert {a["id"] for a in answers} == {builds[0].id}
    assert answers[0]["status_url"].endswith(f"/api/builds/{builds[0].id}")
    # A bare request (no envelope) is keyed by its message id.
    deliver(functions, SEED, "m-3")
    deliver(functions, SEED, "m-3")
    assert len(queue_rt.store.list(page_size=10).builds) == 2


def test_a_bad_queued_request_is_recorded_as_rejected_and_answered(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    reply_to = reply_queue(queue_rt)
    bad = {**json.loads(SEED), "colour": "blue"}
    deliver(functions, wrapped(bad, "bad-1", reply_to))
    assert queue_rt.store.list(page_size=10).builds == []
    [answer] = replies(queue_rt, reply_to)
    assert answer["status"] == "rejected" and "colour" in [p["field"] for p in answer["problems"]]
    listed = call(functions, "list_builds")(
        http("GET", "builds", who=ADMIN, params={"state": "rejected"})
    )
    [rejected] = json.loads(listed.get_body())["builds"]
    assert rejected["id"] == answer["id"] and rejected["state"] == "rejected"
    assert rejected["client_request_id"] == "bad-1"
    assert "colour" in [p["field"] for p in rejected["problems"]]
    mine = call(functions, "list_builds")(
        http("GET", "builds", who=ALICE, params={"state": "rejected"})
    )
    assert json.loads(mine.get_body())["builds"] == []  # no principal: administrators see them


def test_an_undecodable_message_raises_for_the_poison_queue_and_records_nothing(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    for body in (b"\xff\xfe not json", b"[1, 2]"):
        with pytest.raises(UndecodableMessage):
            deliver(functions, body)
    assert queue_rt.store.list(page_size=10).builds == []
    assert queue_rt.store.list_rejected().submissions == []


async def test_reply_to_hears_how_the_build_ended(queue_rt: Runtime) -> None:
    reply_to = reply_queue(queue_rt)
    build = Build(
        id="bqueued001",
        request=json.loads(SEED),
        owner="alice@example.org",
        state=BuildState.RUNNING,
        stage=Stage.CLEANUP,
        outcome=BuildState.FAILED,
        error="install failed",
        token="t1",
        reply_to=reply_to,
    )
    queue_rt.store.create(build)
    message = StageMessage(build.id, Stage.CLEANUP, "t1").to_json()
    await fail_from_poison(queue_rt, message, "build-cleanup-poison")
    [outcome] = replies(queue_rt, reply_to)
    assert outcome["status"] == "failed" and outcome["id"] == build.id
    assert "install failed" in outcome["error"]


def test_twenty_racing_deliveries_of_one_request_make_one_build(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    reply_to = reply_queue(queue_rt)
    message = wrapped(json.loads(SEED), "raced-request", reply_to)
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda i: deliver(functions, message, f"m-{i}"), range(20)))
    builds = queue_rt.store.list(page_size=50).builds
    assert len(builds) == 1
    answers = replies(queue_rt, reply_to)
    assert len(answers) == 20 and {a["id"] for a in answers} == {builds[0].id}
    assert len(list(queue_rt.bus.client("build-provision").receive_messages(max_messages=32))) == 1


@pytest.mark.parametrize(
    "reply_to",
    [
        "build-provision",
        "build-requests",
        "autostop-vm",
        "build-verify-poison",
        "ws-create",
        "ws-verify",
        "ws-delete-poison",
    ],
)
def test_a_reply_is_never_sent_to_a_queue_the_controller_reads(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
    reply_to: str,
) -> None:
    queue = queue_rt.bus.client(reply_to)
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    before = queue.get_queue_properties().approximate_message_count
    bad = {**json.loads(SEED), "colour": "blue"}
    deliver(functions, wrapped(bad, f"hostile-{reply_to}", reply_to))
    assert queue.get_queue_properties().approximate_message_count == before
    [rejected] = queue_rt.store.list_rejected().submissions
    assert rejected.client_request_id == f"hostile-{reply_to}"


def test_no_queue_the_app_reads_is_a_usable_reply_queue(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    """Every queue trigger the app registers, and its poison queue, whatever it is named."""
    read = {
        str(binding.queue_name).replace(
            "%BUILD_REQUESTS_QUEUE%", os.environ.get("BUILD_REQUESTS_QUEUE", "build-requests")
        )
        for f in functions.values()
        for binding in f.get_bindings()[:1]
        if binding.type == "queueTrigger"
    }
    assert "ws-verify" in read
    usable = {q for name in read for q in (name, f"{name}-poison") if usable_reply_queue(q)}
    assert usable == set()
    assert usable_reply_queue("replies-for-me")


def test_a_reply_to_a_queue_that_does_not_exist_creates_nothing(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    missing = f"nobody-{uuid.uuid4().hex[:8]}"
    deliver(functions, wrapped({**json.loads(SEED), "colour": "blue"}, "unheard-1", missing))
    service = QueueServiceClient.from_connection_string(queue_rt.settings.storage_connection)
    assert missing not in [q.name for q in service.list_queues()]
    [rejected] = queue_rt.store.list_rejected().submissions
    assert rejected.client_request_id == "unheard-1"


def test_a_rejection_with_a_long_id_and_a_token_in_a_package_is_recorded_whole_and_scrubbed(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
) -> None:
    reply_to = reply_queue(queue_rt)
    bad = json.loads(SEED)
    bad["python"]["packages"] = [
        f"pkg{i} @ https://ghp_secrettoken{i}@example.org/pkg{i}.tar.gz; rm -rf /"
        for i in range(60)
    ]
    deliver(functions, wrapped(bad, "k" * 5000, reply_to))
    [rejected] = queue_rt.store.list_rejected().submissions  # the record reads back whole
    assert len(rejected.client_request_id) == 200 and rejected.problems
    [answer] = replies(queue_rt, reply_to)
    shown = json.dumps(rejected.model_dump(mode="json")) + json.dumps(answer)
    assert "ghp_secrettoken" not in shown


def test_a_request_the_controller_cannot_take_is_answered_at_its_last_delivery(
    functions: dict[str, Any],  # noqa: F811
    queue_rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Storage that does not answer (a 503 from the insert, injected here) makes the host
    deliver the request again; at the last delivery, before poison, reply_to hears it."""
    from shared.api import builds
    from shared.api.builds import ApiResponse

    busy = ApiResponse(503, {"error": "unavailable", "problems": []})
    monkeypatch.setattr(builds, "submit", lambda *a, **k: busy)
    reply_to = reply_queue(queue_rt)
    message = wrapped(json.loads(SEED), "pipeline-run-9", reply_to)
    submit = call(functions, "submit_from_queue")
    for delivery in range(1, queue_submit.MAX_DELIVERIES + 1):
        with pytest.raises(queue_submit.SubmissionUnavailable):
            submit(QueueMessage(id="m-9", body=message, dequeue_count=delivery))
        answered = replies(queue_rt, reply_to)
        if delivery < queue_submit.MAX_DELIVERIES:
            assert answered == []  # it may still go through
    [answer] = answered
    assert answer["status"] == "unavailable" and answer["client_request_id"] == "pipeline-run-9"
    assert "send it again" in answer["error"]
    assert queue_rt.store.list(page_size=10).builds == []


def test_the_last_delivery_is_the_hosts() -> None:
    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == queue_submit.MAX_DELIVERIES
