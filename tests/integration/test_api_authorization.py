"""Who may do what through the builds API: the Functions app called as the host calls it, with
the principal header App Service authentication puts on user routes, and as a key holder on
the automation routes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_function_app import SEED, app_runtime, call, functions, http  # noqa: F401

from shared.runtime import Runtime
from tests.principals import ADMIN, ALICE, BOB, object_id_of

KEY_HOLDER: dict[str, str] = {}  # the host checked the key; the app sees no principal


def body(response: Any) -> Any:
    return json.loads(response.get_body())


def submit_as_alice(functions: dict[str, Any]) -> str:  # noqa: F811
    response = call(functions, "submit_build")(http("POST", "builds", SEED))
    assert response.status_code == 202, body(response)
    return str(body(response)["id"])


def test_the_owner_is_the_signed_in_principal(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    build_id = submit_as_alice(functions)
    build = app_runtime.store.get(build_id).build
    assert build.owner == "alice@example.org"
    assert build.owner_id == object_id_of("alice@example.org")


def test_a_user_cannot_submit_for_someone_else_but_an_admin_can(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    refused = call(functions, "submit_build")(http("POST", "builds", SEED, who=BOB))
    assert refused.status_code == 400
    assert [p["field"] for p in body(refused)["problems"]] == ["owner"]
    assert app_runtime.store.list(page_size=10).builds == []
    accepted = call(functions, "submit_build")(http("POST", "builds", SEED, who=ADMIN))
    assert accepted.status_code == 202
    build = app_runtime.store.get(body(accepted)["id"]).build
    assert build.owner == "alice@example.org" and build.owner_id == ""  # admins manage it


def test_another_users_build_is_not_found_for_reading_listing_or_cancelling(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    build_id = submit_as_alice(functions)
    seen = call(functions, "get_build")(http("GET", f"builds/{build_id}", who=BOB, id=build_id))
    missing = call(functions, "get_build")(http("GET", "builds/bnope", who=BOB, id="bnope"))
    assert seen.status_code == missing.status_code == 404
    assert body(seen)["problems"][0]["message"] == f"there is no build {build_id!r}"
    listed = call(functions, "list_builds")(http("GET", "builds", who=BOB))
    assert body(listed)["builds"] == []
    others = call(functions, "list_builds")(
        http("GET", "builds", who=BOB, params={"owner": "alice@example.org"})
    )
    assert others.status_code == 403 and body(others)["problems"][0]["field"] == "owner"
    cancelled = call(functions, "cancel_build")(
        http("POST", f"builds/{build_id}/cancel", who=BOB, id=build_id)
    )
    assert cancelled.status_code == 404
    assert not app_runtime.store.get(build_id).build.cancel_requested

    own = call(functions, "list_builds")(http("GET", "builds"))
    assert [b["id"] for b in body(own)["builds"]] == [build_id]
    mine = call(functions, "get_build")(http("GET", f"builds/{build_id}", id=build_id))
    assert mine.status_code == 200


def test_an_admin_and_a_key_holder_see_and_cancel_every_build(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    build_id = submit_as_alice(functions)
    listed = call(functions, "list_builds")(http("GET", "builds", who=ADMIN))
    assert [b["id"] for b in body(listed)["builds"]] == [build_id]
    read = call(functions, "automation_get_build")(
        http("GET", f"automation/builds/{build_id}", who=KEY_HOLDER, id=build_id)
    )
    assert read.status_code == 200
    cancelled = call(functions, "cancel_build")(
        http("POST", f"builds/{build_id}/cancel", who=ADMIN, id=build_id)
    )
    assert cancelled.status_code == 202
    assert app_runtime.store.get(build_id).build.cancel_requested


def test_a_key_holder_submits_for_the_owner_it_names(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
) -> None:
    accepted = call(functions, "automation_submit_build")(
        http("POST", "automation/builds", SEED, who=KEY_HOLDER)
    )
    assert accepted.status_code == 202
    assert body(accepted)["status_url"].endswith(f"/api/builds/{body(accepted)['id']}")
    assert app_runtime.store.get(body(accepted)["id"]).build.owner == "alice@example.org"


@pytest.mark.parametrize("route", ["submit_build", "list_builds", "get_costs"])
def test_nobody_signed_in_gets_401_and_nothing_is_created(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
    route: str,
) -> None:
    response = call(functions, route)(http("POST", "builds", SEED, who={}))
    assert response.status_code == 401
    assert app_runtime.store.list(page_size=10).builds == []


def test_a_principal_header_is_not_trusted_when_app_service_authentication_is_off(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without App Service authentication nothing strips a client's header: it is forged."""
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    response = call(functions, "submit_build")(http("POST", "builds", SEED, who=ADMIN))
    assert response.status_code == 401
    garbage = {"x-ms-client-principal": "not base64 at all!"}
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    response = call(functions, "list_builds")(http("GET", "builds", who=garbage))
    assert response.status_code == 401
    assert app_runtime.store.list(page_size=10).builds == []


def test_costs_are_for_admins(
    functions: dict[str, Any],  # noqa: F811
    app_runtime: Runtime,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("functions.costguard.get_runtime", lambda: app_runtime)
    response = call(functions, "get_costs")(http("GET", "costs", who=ALICE))
    assert response.status_code == 403
