"""Exactly one build per request: the Idempotency-Key header through the Functions app, on
Azurite, with submissions racing each other."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from test_function_app import SEED, app_runtime, call, functions, http  # noqa: F401

from shared.runtime import Runtime
from tests.principals import ADMIN, ALICE


def submit(functions: dict[str, Any], key: str, body: bytes = SEED, who: Any = ALICE) -> Any:  # noqa: F811
    request = http("POST", "builds", body, who={**who, "Idempotency-Key": key})
    return call(functions, "submit_build")(request)


def provision_messages(rt: Runtime) -> list[Any]:
    return list(rt.bus.client("build-provision").receive_messages(max_messages=32))


def test_the_same_key_answers_the_same_build(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    first = submit(functions, "retry-me-1")
    assert first.status_code == 202
    build_id = json.loads(first.get_body())["id"]
    again = submit(functions, "retry-me-1", SEED.replace(b"{", b"{ ", 1))  # same JSON
    assert again.status_code == 200
    status = json.loads(again.get_body())
    assert status["id"] == build_id and status["state"] == "queued"
    assert [b.id for b in app_runtime.store.list(page_size=10).builds] == [build_id]
    assert len(provision_messages(app_runtime)) == 1


def test_the_same_key_with_another_body_is_a_conflict_naming_the_key(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    assert submit(functions, "k-2").status_code == 202
    other = json.loads(SEED)
    other["name"] = "another-build"
    refused = submit(functions, "k-2", json.dumps(other).encode())
    assert refused.status_code == 409
    assert json.loads(refused.get_body())["problems"][0]["field"] == "Idempotency-Key"
    assert len(app_runtime.store.list(page_size=10).builds) == 1


def test_keys_are_per_submitter_and_must_be_plain(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    assert submit(functions, "shared-key").status_code == 202
    assert submit(functions, "shared-key", who=ADMIN).status_code == 202  # another submitter
    bad = submit(functions, "has space")
    assert bad.status_code == 400
    assert json.loads(bad.get_body())["problems"][0]["field"] == "Idempotency-Key"
    assert len(app_runtime.store.list(page_size=10).builds) == 2


def test_twenty_racing_submissions_with_one_key_make_one_build(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: submit(functions, "raced-key"), range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 19 + [202], statuses
    ids = {json.loads(a.get_body())["id"] for a in answers}
    builds = app_runtime.store.list(page_size=50).builds
    assert len(ids) == 1 and [b.id for b in builds] == list(ids)
    assert len(provision_messages(app_runtime)) == 1
