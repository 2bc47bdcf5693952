"""The builds API: submit, read, list, cancel. Answers are (status, JSON body) pairs."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import telemetry
from shared.api.caller import Caller
from shared.api.views import build_status, build_summary
from shared.bus import StageMessage
from shared.data_access import data_problems
from shared.errors import StepError
from shared.models.parse import parse_build_request
from shared.models.problems import RequestInvalid, RequestRejected
from shared.models.request import BuildRequest
from shared.runtime import Runtime
from shared.ssh.keys import ensure_build_keys
from shared.state.idempotency import Claimed, IdempotencyKeys, check_key
from shared.state.machine import Stage
from shared.state.record import Build, is_build_id, new_build_id, new_token, utcnow
from shared.state.store import BuildNotFound, ConcurrentUpdate
from shared.target_owners import target_problems

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
IDEMPOTENCY_HEADER = "Idempotency-Key"
FIRST_HOP_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class ApiResponse:
    """An answer: `body` as JSON, or raw bytes sent as `content_type` when that is set."""

    status: int
    body: Any
    content_type: str | None = None


def error_response(status: int, error: str, field: str = "", message: str = "") -> ApiResponse:
    problems = [{"field": field, "message": message}] if message else []
    return ApiResponse(status, {"error": error, "problems": problems})


def unauthenticated() -> ApiResponse:
    return error_response(401, "unauthenticated", "", "sign in (App Service authentication) first")


def _not_found(build_id: str) -> ApiResponse:
    # The same answer for another owner's build, so ids of others' builds do not leak.
    return error_response(404, "not found", "id", f"there is no build {build_id[:80]!r}")


def status_url(base_url: str, build_id: str) -> str:
    """Where a build's status is read: GET <base>/api/builds/<id>."""
    return f"{base_url.rstrip('/')}/api/builds/{build_id}"


def _visible(caller: Caller, build: Build) -> bool:
    return caller.is_admin or caller.owns(build.owner_id)


def submit(
    rt: Runtime,
    body: bytes,
    base_url: str,
    caller: Caller,
    idempotency_key: str | None = None,
    *,
    reply_to: str = "",
    submitter: str = "",
    source: str = "http",
) -> ApiResponse:
    """One submission, over HTTP or from the queue (`source`), as one `submit` span that
    records the path, the answer and, when refused, the first field at fault."""
    attributes = {"labimage.submit.source": source}
    with telemetry.span("submit", attributes, kind="internal") as span:
        answer = _submit(
            rt, body, base_url, caller, idempotency_key, reply_to=reply_to, submitter=submitter
        )
        span.set("labimage.submit.status", answer.status)
        if answer.status >= 400 and isinstance(answer.body, dict):
            problems = answer.body.get("problems") or [{}]
            reason = problems[0].get("field") or answer.body.get("error", "")
            span.set("labimage.submit.reason", reason)
        return answer


def _submit(
    rt: Runtime,
    body: bytes,
    base_url: str,
    caller: Caller,
    idempotency_key: str | None = None,
    *,
    reply_to: str = "",
    submitter: str = "",
) -> ApiResponse:
    """Validate, record, then queue the first stage. Nothing is created for a bad request.

    A signed-in user submits for themself: `owner` must be their user name and the build is
    theirs. An administrator or key holder may name anyone as owner; such a build is managed
    by administrators (it records no principal).

    With an idempotency key, the same key from the same submitter within 24 hours answers
    200 with the first build's status instead of making a second build (409 if the body
    differs)."""
    try:
        request = parse_build_request(body)
        refused = data_problems(request, rt.settings)
        if refused:
            raise RequestInvalid(refused)
    except RequestRejected as exc:
        return ApiResponse(exc.http_status, exc.to_body())
    is_self = not caller.key_holder and request.owner.lower() == caller.name.lower()
    if not is_self and not caller.is_admin:
        return error_response(
            400,
            "invalid request",
            "owner",
            f"owner must be your user name {caller.name!r}: you submit builds for yourself",
        )
    taken = _foreign_targets(rt, request, caller)
    if taken is not None:
        return taken
    build_id = new_build_id()
    claim: tuple[IdempotencyKeys, str, str] | None = None
    if idempotency_key is not None:
        keys = rt.store.idempotency_keys()
        submitter = submitter or caller.object_id or "automation"
        held = _claim_key(rt, keys, submitter, idempotency_key, request, build_id)
        if held is not None:
            return held
        claim = (keys, submitter, idempotency_key)
    token = new_token()
    build = Build(
        id=build_id,
        request=request.model_dump(mode="json"),
        owner=request.owner,
        owner_id=caller.object_id if is_self else "",
        submitted_as_admin=caller.is_admin,
        reply_to=reply_to,
        token=token,
        next_hop_due=utcnow() + FIRST_HOP_GRACE,
    ).with_event("build accepted", Stage.PROVISION)
    ensure_build_keys(rt.keys, build_id)
    try:
        rt.store.create(build)
    except Exception:
        rt.keys.delete(build_id)  # nothing of a build that was never recorded stays behind
        if claim is not None:
            claim[0].release(claim[1], claim[2], build_id)
        raise
    # Should this send fail, the watchdog sends it later: the build is recorded as due.
    rt.bus.send(StageMessage(build_id, Stage.PROVISION, token))
    logger.info("build %s accepted for %s", build_id, request.owner)
    url = status_url(base_url, build_id)
    return ApiResponse(202, {"id": build_id, "status_url": url})


def _foreign_targets(rt: Runtime, request: BuildRequest, caller: Caller) -> ApiResponse | None:
    """409 when the build would take over an image another owner's build made; None when not."""
    try:
        problems = target_problems(lambda: rt.store, rt.azure, request, caller.is_admin)
    except StepError as exc:
        return error_response(
            503, "unavailable", "image", f"the existing image could not be read: {exc}"
        )
    if not problems:
        return None
    return ApiResponse(
        409, {"error": "conflict", "problems": [p.model_dump(mode="json") for p in problems]}
    )


def _claim_key(
    rt: Runtime,
    keys: IdempotencyKeys,
    submitter: str,
    key: str,
    request: BuildRequest,
    build_id: str,
) -> ApiResponse | None:
    """None when this submission holds the key (go on with `build_id`); else the answer."""
    why = check_key(key)
    if why:
        return error_response(
            400, "invalid request", IDEMPOTENCY_HEADER, f"{IDEMPOTENCY_HEADER} {why}"
        )
    digest = hashlib.sha256(
        json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    outcome = keys.claim(submitter, key, digest, build_id, utcnow(), rt.store.exists)
    if isinstance(outcome, Claimed):
        return None
    if not outcome.same_body:
        return error_response(
            409,
            "conflict",
            IDEMPOTENCY_HEADER,
            f"this {IDEMPOTENCY_HEADER} was used for a different request (build "
            f"{outcome.build_id}); use a new key for a new request",
        )
    for _ in range(50):  # the first submission may still be recording its build
        try:
            stored = rt.store.get(outcome.build_id)
        except BuildNotFound:
            time.sleep(0.1)
            continue
        logger.info("build %s submitted again with the same idempotency key", stored.build.id)
        return ApiResponse(200, build_status(stored.build).model_dump(mode="json"))
    return error_response(
        503, "busy", IDEMPOTENCY_HEADER, "the first submission is still being recorded"
    )


def get(rt: Runtime, build_id: str, caller: Caller) -> ApiResponse:
    if not is_build_id(build_id):
        return _not_found(build_id)
    try:
        stored = rt.store.get(build_id)
    except BuildNotFound:
        return _not_found(build_id)
    if not _visible(caller, stored.build):
        return _not_found(build_id)
    return ApiResponse(200, build_status(stored.build).model_dump(mode="json"))


def list_builds(rt: Runtime, query: dict[str, str], caller: Caller) -> ApiResponse:
    """A page of builds: a user's own only; an administrator's all (or one owner's)."""
    owner = query.get("owner") or None
    if not caller.is_admin and owner and owner.lower() != caller.name.lower():
        return error_response(403, "forbidden", "owner", "you may list your own builds only")
    state = query.get("state") or None
    if state and state not in {"queued", "running", "succeeded", "failed", "cancelled", "rejected"}:
        return error_response(
            400,
            "invalid request",
            "state",
            "state must be one of queued, running, succeeded, failed, cancelled, rejected",
        )
    try:
        page_size = int(query.get("page_size", "50"))
    except ValueError:
        page_size = 0
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        return error_response(
            400, "invalid request", "page_size", f"page_size must be 1 to {MAX_PAGE_SIZE}"
        )
    if state == "rejected":
        return _rejected(rt, caller, page_size, query.get("page_token") or None)
    try:
        page = rt.store.list(
            state=state,
            owner=owner if caller.is_admin else None,
            owner_id=None if caller.is_admin else caller.object_id,
            page_size=page_size,
            page_token=query.get("page_token") or None,
        )
    except ValueError as exc:
        return error_response(400, "invalid request", "page_token", str(exc))
    builds = sorted(page.builds, key=lambda b: b.created_at, reverse=True)
    return ApiResponse(
        200,
        {
            "builds": [build_summary(b).model_dump(mode="json") for b in builds],
            "next_page_token": page.next_token,
        },
    )


def _rejected(rt: Runtime, caller: Caller, page_size: int, token: str | None) -> ApiResponse:
    """Refused queue submissions: they carry no principal, so administrators see them."""
    if not caller.is_admin:
        return ApiResponse(200, {"builds": [], "next_page_token": None})
    try:
        page = rt.store.list_rejected(page_size, token)
    except ValueError as exc:
        return error_response(400, "invalid request", "page_token", str(exc))
    listed = sorted(page.submissions, key=lambda r: r.created_at, reverse=True)
    return ApiResponse(
        200, {"builds": [r.summary() for r in listed], "next_page_token": page.next_token}
    )


def cancel(rt: Runtime, build_id: str, base_url: str, caller: Caller) -> ApiResponse:
    """Ask a build to stop at its next safe point; cleanup then removes what it made."""
    if not is_build_id(build_id):
        return _not_found(build_id)
    for _ in range(5):
        try:
            stored = rt.store.get(build_id)
        except BuildNotFound:
            return _not_found(build_id)
        build = stored.build
        if not _visible(caller, build):
            return _not_found(build_id)
        if build.state.terminal:
            return error_response(
                409, "conflict", "id", f"build {build_id} has already {build.state.value}"
            )
        if build.cancel_requested:
            break
        try:
            rt.store.replace(
                stored,
                build.model_copy(
                    update={"cancel_requested": True, "updated_at": utcnow()}
                ).with_event("cancel requested"),
            )
            break
        except ConcurrentUpdate:
            continue
    else:
        return error_response(503, "busy", "", "the build is changing fast; try again")
    url = status_url(base_url, build_id)
    return ApiResponse(202, {"id": build_id, "status_url": url})
