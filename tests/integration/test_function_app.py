"""The Functions app called as the host calls it: real HttpRequest and QueueMessage objects."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from shared import runtime as runtime_module
from shared import settings as settings_module
from shared.bus import StageMessage
from shared.runtime import Runtime
from shared.settings import Settings
from tests.principals import ADMIN, ALICE

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "seed-request.json").read_bytes()


@pytest.fixture(scope="module")
def functions(app_functions: dict[str, Any]) -> dict[str, Any]:
    return app_functions  # get_functions() may be called once per process: see conftest


@pytest.fixture
def app_runtime(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """Make the app's get_runtime() answer the test runtime."""
    monkeypatch.setattr(runtime_module, "get_runtime", lambda: runtime)
    for module in ("functions.api", "functions.pipeline", "functions.timers"):
        monkeypatch.setattr(f"{module}.get_runtime", lambda: runtime)
    settings_module.get_settings.cache_clear()
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service authentication is on
    yield runtime


def call(functions: dict[str, Any], name: str) -> Callable[..., Any]:
    return functions[name].get_user_function()


def http(
    method: str,
    path: str,
    body: bytes = b"",
    who: dict[str, str] = ALICE,
    params: dict[str, str] | None = None,
    **route: str,
) -> func.HttpRequest:
    """A request signed in as `who` (the seed request's owner, alice, by default)."""
    return func.HttpRequest(
        method=method,
        url=f"http://127.0.0.1:7071/api/{path}",
        body=body,
        route_params=route,
        params=params or {},
        headers={"content-type": "application/json", **who},
    )


def test_the_app_registers_routes_stage_queues_poison_handlers_and_timers(
    functions: dict[str, Any],
) -> None:
    triggers: dict[str, list[str]] = {}
    for f in functions.values():
        binding = f.get_bindings()[0]
        key = getattr(binding, "queue_name", None) or getattr(binding, "route", None)
        key = key or getattr(binding, "schedule", None)
        triggers.setdefault(binding.type, []).append(str(key))
    stages = ["provision", "mount", "install", "verify", "capture", "relaunch", "cleanup"]
    assert sorted(triggers["queueTrigger"]) == sorted(
        [f"build-{s}" for s in stages]
        + [f"build-{s}-poison" for s in stages]
        + ["autostop-vm", "%BUILD_REQUESTS_QUEUE%"]
        + ["ws-create", "ws-verify", "ws-delete"]
        + ["ws-create-poison", "ws-verify-poison", "ws-delete-poison"]
    )
    assert sorted(triggers["timerTrigger"]) == [
        "%AUTOSTOP_SCHEDULE%",
        "%IDLE_SCHEDULE%",
        "%SWEEPER_SCHEDULE%",
        "%WATCHDOG_SCHEDULE%",
        "%WORKSTATION_SCHEDULE%",
    ]
    user_routes = {
        "builds",
        "builds/{id}",
        "builds/{id}/cancel",
        "costs",
        "vms/{resource_group}/{name}/snooze",
        "manifests/{sha256}",
        "manifests/{sha256}/sbom",
        "manifests/{a}/diff/{b}",
        "images",
        "images/{name}",
        "builds/{id}/logs",
        "builds/{id}/logs/{job}",
        "workstations",
        "workstations:batch",
        "workstations/{id}",
        "workstations/{id}/start",
        "workstations/{id}/stop",
        "workstations/{id}/snooze",
    }
    automation_routes = {f"automation/{route}" for route in user_routes}
    signed_links = {"links/workstations/{id}/{action}"}
    assert set(triggers["httpTrigger"]) == (
        user_routes | automation_routes | {"openapi.json"} | signed_links
    )
    for f in functions.values():
        binding = f.get_bindings()[0]
        if binding.type == "httpTrigger":
            keyed = str(binding.route).startswith("automation/")
            level = str(getattr(binding.auth_level, "value", binding.auth_level)).lower()
            assert level == ("function" if keyed else "anonymous"), binding.route


def test_every_setting_a_binding_names_is_in_the_sample_settings(
    functions: dict[str, Any],
) -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for f in functions.values():
        for binding in f.get_bindings():
            for value in vars(binding).values():
                if isinstance(value, str) and value.startswith("%") and value.endswith("%"):
                    assert value.strip("%") in sample
            connection = getattr(binding, "connection", None)
            if connection:
                assert connection in sample


def test_submit_accepts_the_seed_and_queues_provision(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    response = call(functions, "submit_build")(http("POST", "builds", SEED))
    assert response.status_code == 202
    body = json.loads(response.get_body())
    assert body["status_url"] == f"http://127.0.0.1:7071/api/builds/{body['id']}"
    messages = list(app_runtime.bus.client("build-provision").receive_messages())
    assert [StageMessage.from_json(m.content).build_id for m in messages] == [body["id"]]
    # The build's key pairs exist before any stage runs (so no two stage runs can make two).
    client = app_runtime.keys.load(body["id"], "client")
    assert client.public_line.startswith("ssh-ed25519 ")

    status = call(functions, "get_build")(http("GET", f"builds/{body['id']}", id=body["id"]))
    shown = json.loads(status.get_body())
    assert shown["state"] == "queued" and shown["stage"] == "provision"
    assert shown["name"] == "ooi-jupyter"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.update(colour="blue"), "colour"),
        (lambda r: r["python"].update(packages=["numpy; rm -rf /"]), "python.packages[0]"),
        (
            lambda r: r["repositories"][0].update(url="http://example.org/x.git"),
            "repositories[0].url",
        ),
        (lambda r: r["data"][0].update(destination="/etc/passwd"), "data[0].destination"),
        (lambda r: r["data_disk"].update(size_gb=100000), "data_disk.size_gb"),
        # The controller's own containers (host keys, the deployed package) are never data.
        (lambda r: r["data"][0].update(container="azure-webjobs-secrets"), "data[0].container"),
        (lambda r: r["data"][0].update(container="payroll"), "data[0].container"),
    ],
)
def test_bad_requests_get_400_naming_the_field_and_nothing_is_created(
    functions: dict[str, Any], app_runtime: Runtime, change: Any, field: str
) -> None:
    request = json.loads(SEED)
    change(request)
    response = call(functions, "submit_build")(http("POST", "builds", json.dumps(request).encode()))
    assert response.status_code == 400
    problems = json.loads(response.get_body())["problems"]
    assert field in [p["field"] for p in problems]
    assert app_runtime.store.list(page_size=10).builds == []
    assert not list(Path(app_runtime.settings.ssh_key_dir or "").glob("*"))
    assert list(app_runtime.bus.client("build-provision").receive_messages()) == []


def test_a_body_over_64_kib_gets_413(functions: dict[str, Any], app_runtime: Runtime) -> None:
    response = call(functions, "submit_build")(http("POST", "builds", b" " * (64 * 1024 + 1)))
    assert response.status_code == 413
    assert app_runtime.store.list(page_size=10).builds == []


def test_a_deeply_nested_body_gets_400_not_500(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    response = call(functions, "submit_build")(http("POST", "builds", b"[" * 60_000))
    assert response.status_code == 400
    assert "nested too deeply" in json.loads(response.get_body())["problems"][0]["message"]
    assert app_runtime.store.list(page_size=10).builds == []


def test_a_rebuild_body_over_64_kib_gets_413_before_it_is_read(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    body = json.dumps({"from_manifest": "f" * 64, "pad": " " * (64 * 1024)}).encode()
    response = call(functions, "submit_build")(http("POST", "builds", body))
    assert response.status_code == 413  # not the 400 of an unknown field: it was not parsed
    assert app_runtime.store.list(page_size=10).builds == []


def test_cancel_marks_the_build_and_a_finished_build_cannot_be_cancelled(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    accepted = json.loads(call(functions, "submit_build")(http("POST", "builds", SEED)).get_body())
    build_id = accepted["id"]
    response = call(functions, "cancel_build")(
        http("POST", f"builds/{build_id}/cancel", id=build_id)
    )
    assert response.status_code == 202
    assert app_runtime.store.get(build_id).build.cancel_requested
    missing = call(functions, "cancel_build")(http("POST", "builds/bnope/cancel", id="bnope"))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "build_id",
    [
        "b/../../x",
        "bnope#1",
        "b?x=1",
        "b'or'1'eq'1",
        "b" + "a" * 2000,
        "Bupper0001",
        "b123456789\n",
    ],
)
def test_an_id_that_is_not_a_build_id_is_not_found_for_read_and_cancel(
    functions: dict[str, Any], app_runtime: Runtime, build_id: str
) -> None:
    for name, method, path in (
        ("get_build", "GET", f"builds/{build_id}"),
        ("cancel_build", "POST", f"builds/{build_id}/cancel"),
    ):
        response = call(functions, name)(http(method, path, who=ADMIN, id=build_id))
        assert response.status_code == 404, (name, build_id)
        assert json.loads(response.get_body())["problems"][0]["field"] == "id"


def test_list_filters_by_owner(functions: dict[str, Any], app_runtime: Runtime) -> None:
    call(functions, "submit_build")(http("POST", "builds", SEED))
    request = http("GET", "builds", who=ADMIN, params={"owner": "alice@example.org"})
    listed = json.loads(call(functions, "list_builds")(request).get_body())
    assert [b["owner"] for b in listed["builds"]] == ["alice@example.org"]
    request = http("GET", "builds", who=ADMIN, params={"owner": "bob"})
    assert json.loads(call(functions, "list_builds")(request).get_body())["builds"] == []


def test_a_duplicate_stage_message_is_dropped(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    accepted = json.loads(call(functions, "submit_build")(http("POST", "builds", SEED)).get_body())
    build = app_runtime.store.get(accepted["id"]).build
    stale = StageMessage(build.id, build.stage, "not-the-token").to_json().encode()
    message = QueueMessage(id="m1", body=stale, dequeue_count=1)
    call(functions, "stage_provision")(message)
    assert app_runtime.store.get(build.id).build == build


def test_openapi_is_served(functions: dict[str, Any]) -> None:
    response = call(functions, "openapi")(http("GET", "openapi.json"))
    document = json.loads(response.get_body())
    assert document["openapi"].startswith("3.")
    assert "/api/builds" in document["paths"]


def test_hostile_bodies_through_the_http_route_get_202_400_or_413_never_500(
    functions: dict[str, Any], app_runtime: Runtime
) -> None:
    from hypothesis import HealthCheck, given
    from hypothesis import settings as fuzz_settings

    from tests.fuzz.strategies import encoded, mutated_requests

    statuses: dict[int, int] = {}

    @fuzz_settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated_requests())
    def one(document: object) -> None:
        response = call(functions, "submit_build")(http("POST", "builds", encoded(document)))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code in (202, 400, 413)
        body = json.loads(response.get_body())
        if response.status_code != 202:
            assert body["problems"] and all("field" in p for p in body["problems"])

    one()
    accepted = statuses.get(202, 0)
    assert accepted and statuses.get(400), statuses
    # Every accepted body is one recorded build; nothing else was recorded.
    recorded = app_runtime.store.list(page_size=100).builds
    assert len(recorded) == min(accepted, 100)
