"""Submissions from the `build-requests` queue: the same validation and insert as HTTP.

A message holds the body of POST /api/builds (a rebuild, {"from_manifest": ...}, too), or wraps it:
`{"request": {...}, "client_request_id": "...", "reply_to": "<queue name>"}`. The idempotency
key is `client_request_id`, else the message id, so a message delivered twice makes one build.
Whoever may write to the queue holds a storage role: such a submission acts as an
administrator (as a function key does), for the owner its request names.

A valid request becomes a build; `reply_to` gets {status: accepted, id, status_url}, and when
the build ends a second message with its outcome (shared/pipeline.py). An invalid one is
recorded as a rejected submission (GET /api/builds?state=rejected) and answered on `reply_to`
with the problems HTTP would give. A message that is not JSON at all raises, so the host
retries it and then moves it to the poison queue; the log names why. One the controller cannot
take now (its storage busy) raises too, and at its last delivery `reply_to` hears so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from shared.api import builds, manifests
from shared.api.builds import ApiResponse
from shared.api.caller import Caller
from shared.runtime import Runtime
from shared.state.rejected import RejectedSubmission

logger = logging.getLogger(__name__)

QUEUE_SUBMITTER = "queue"
MAX_DELIVERIES = 5  # host.json extensions.queues.maxDequeueCount
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


class SubmissionUnavailable(RuntimeError):
    """The controller could not take the submission now: raised, so the host delivers it again."""


class UndecodableMessage(ValueError):
    """Not a JSON object: nothing to record or answer; the host moves it to poison."""


def unwrap(body: bytes) -> tuple[dict[str, Any], str | None, str | None]:
    """(request document, client_request_id, reply_to) of a message; UndecodableMessage."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UndecodableMessage(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise UndecodableMessage("not a JSON object")
    if "request" not in document:
        return document, None, None
    request = document["request"]
    client_id = document.get("client_request_id")
    reply_to = document.get("reply_to")
    return (
        request if isinstance(request, dict) else {"request": request},
        client_id if isinstance(client_id, str) else None,
        reply_to if isinstance(reply_to, str) and usable_reply_queue(reply_to) else None,
    )


# The controller's own queues: stage queues (build-<stage>), build-requests, autostop-vm,
# the workstation queues (ws-create, ws-verify, ws-delete) and their poison queues. A reply
# there would be read as a stage message, a request, a stop or a workstation step.
# (tests/integration/test_queue_submit.py checks every queue the app triggers on.)
_CONTROLLER_QUEUE_PREFIXES = ("build-", "autostop-", "ws-")


def usable_reply_queue(name: str) -> bool:
    """A valid queue name that is not one the controller itself reads."""
    own = os.environ.get("BUILD_REQUESTS_QUEUE", "")
    if not _QUEUE_NAME.fullmatch(name) or name.startswith(_CONTROLLER_QUEUE_PREFIXES):
        return False
    return not own or name not in (own, f"{own}-poison")


def handle_request_message(rt: Runtime, body: bytes, message_id: str, delivery: int = 1) -> str:
    """Submit one queued request; returns what happened, for the log line. `delivery` is the
    host's dequeue count: a request the controller cannot take even at the last one is
    answered as unavailable before it goes to poison, so its submitter is not left waiting."""
    request, client_id, reply_to = unwrap(body)
    key = client_id or message_id
    try:
        return _submit(rt, request, key, reply_to)
    except SubmissionUnavailable:
        if delivery >= MAX_DELIVERIES:
            answer = {
                "status": "unavailable",
                "client_request_id": key,
                "error": "the controller could not take the request (its storage did not "
                "answer) after every delivery; it is in the poison queue: send it again",
            }
            try:
                _reply(rt, reply_to, answer)
            except Exception:  # storage may be what is down: the log still says why
                logger.warning("could not answer %s on %s", key, reply_to, exc_info=True)
        raise


def _submit(rt: Runtime, request: dict[str, Any], key: str, reply_to: str | None) -> str:
    caller = Caller.with_function_key()
    document = manifests.rebuild_body(rt, json.dumps(request).encode(), caller)  # as over HTTP
    answer = (
        document
        if isinstance(document, ApiResponse)
        else builds.submit(
            rt,
            document,
            rt.settings.public_url or "",
            caller,
            key,
            reply_to=reply_to or "",
            submitter=QUEUE_SUBMITTER,
            source="queue",
        )
    )
    if answer.status in (200, 202):
        reply = {
            "status": "accepted",
            "id": answer.body["id"],
            "status_url": builds.status_url(rt.settings.public_url or "", answer.body["id"]),
            "client_request_id": key,
        }
        _reply(rt, reply_to, reply)
        return f"build {answer.body['id']} ({'accepted' if answer.status == 202 else 'known'})"
    if answer.status >= 500:  # storage busy or down: not the request's fault, so try it again
        raise SubmissionUnavailable(f"submission answered {answer.status}: {answer.body}")
    rejected = RejectedSubmission.new(
        source="queue",
        client_request_id=key,
        owner=str(request.get("owner") or "")[:128],
        error=str(answer.body.get("error") or ""),
        problems=list(answer.body.get("problems") or []),
    )
    rt.store.record_rejected(rejected)
    _reply(
        rt,
        reply_to,
        {
            "status": "rejected",
            "id": rejected.id,
            "client_request_id": key,
            "error": rejected.error,
            "problems": rejected.problems,  # bounded and scrubbed, as recorded
        },
    )
    return f"rejected as {rejected.id}: {rejected.error} ({len(rejected.problems)} problems)"


def _reply(rt: Runtime, reply_to: str | None, message: dict[str, Any]) -> None:
    if reply_to and not rt.bus.reply(reply_to, json.dumps(message)):
        logger.warning("reply queue %s does not exist: the answer was not sent", reply_to)
