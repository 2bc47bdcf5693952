"""The cost-guard functions called as the host calls them (real HttpRequest, TimerRequest and
QueueMessage objects), against Azurite and the ARM emulator in-process: the warning webhook
(a local HTTP stub) gets one notice per VM and stop, the snooze route changes the VM's tags so
the scan leaves it running, and the costs route reports stops and problems."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from test_costguard import RG, add_records, costguard_runtime, power

from shared.costguard.autostop import AUTOSTOP_QUEUE
from shared.costguard.schedule import SKIP_TAG, SNOOZE_TAG
from shared.runtime import Runtime
from shared.settings import Settings
from shared.state.record import Build
from tests.principals import ADMIN, ALICE, BOB, object_id_of

PUBLIC_URL = "https://labimage.example.org"


class Webhook:
    """A local webhook: records each JSON body POSTed; answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                hook.received.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def functions(app_functions: dict[str, Any]) -> dict[str, Any]:
    return app_functions  # get_functions() may be called once per process: see conftest


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture
def app_rt(
    settings: Settings, tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime on Azurite and an in-process ARM emulator that the app's functions use."""
    with costguard_runtime(
        settings,
        tmp_path,
        monkeypatch,
        autostop_webhook_url=webhook.url,
        autostop_warn_minutes=30,
        public_url=PUBLIC_URL,
        snooze_max_hours=6,
    ) as runtime:
        monkeypatch.setattr("functions.costguard.get_runtime", lambda: runtime)
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # App Service authentication is on
        yield runtime


def call(functions: dict[str, Any], name: str, *args: Any) -> Any:
    return functions[name].get_user_function()(*args)


def post(
    path: str, params: dict[str, str], who: dict[str, str] = ADMIN, **route: str
) -> func.HttpRequest:
    """A POST signed in as `who` (an administrator unless a test says otherwise)."""
    return func.HttpRequest(
        method="POST",
        url=f"http://127.0.0.1:7071/api/{path}",
        body=b"",
        params=params,
        route_params=route,
        headers=who,
    )


def get(path: str, params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url=f"http://127.0.0.1:7071/api/{path}",
        body=b"",
        params=params,
        headers=ADMIN,
    )


def fire_autostop(functions: dict[str, Any], rt: Runtime) -> list[str]:
    """Run the timer once; the VM names it queued a stop for (the messages stay queued)."""
    call(functions, "autostop", TimerRequest())
    queue = rt.bus.client(AUTOSTOP_QUEUE)
    peeked = queue.peek_messages(max_messages=32)
    return sorted(json.loads(m.content)["vm_id"].rsplit("/", 1)[1] for m in peeked)


def hhmm(at: datetime) -> str:
    return at.strftime("%H:%M")


def test_the_webhook_gets_one_notice_per_vm_and_stop_and_a_failed_one_is_sent_again(
    functions: dict[str, Any], app_rt: Runtime, webhook: Webhook
) -> None:
    now = datetime.now(UTC)
    soon = now + timedelta(minutes=12)
    add_records(
        app_rt,
        {
            "warn-soon": {"labimage-autostop": f"{hhmm(soon)} UTC"},
            "warn-later": {"labimage-autostop": f"{hhmm(now + timedelta(hours=2))} UTC"},
        },
    )
    webhook.status = 500  # the first delivery fails: nothing is recorded as warned
    assert fire_autostop(functions, app_rt) == []
    assert len(webhook.received) == 1

    webhook.status = 200
    fire_autostop(functions, app_rt)
    fire_autostop(functions, app_rt)  # already announced: no second notice
    assert len(webhook.received) == 2
    notice = webhook.received[-1]
    assert notice["event"] == "labimage.autostop.warning"
    assert notice["name"] == "warn-soon" and notice["resource_group"] == RG
    stop_at = datetime.fromisoformat(notice["stop_at"])
    assert stop_at.strftime("%H:%M") == hhmm(soon) and stop_at > now
    assert notice["snooze_url"] == f"{PUBLIC_URL}/api/vms/{RG}/warn-soon/snooze?hours=1"
    assert power(app_rt, "warn-soon") == "running"


def test_snooze_through_the_route_keeps_a_due_vm_running(
    functions: dict[str, Any], app_rt: Runtime
) -> None:
    now = datetime.now(UTC)
    due = f"{hhmm(now - timedelta(minutes=5))} UTC"
    add_records(
        app_rt,
        {"snoozer": {"labimage-autostop": due}, "other": {"labimage-autostop": due}},
    )
    response = call(
        functions,
        "snooze_vm",
        post(f"vms/{RG}/snoozer/snooze", {"hours": "2"}, resource_group=RG, name="snoozer"),
    )
    assert response.status_code == 200, response.get_body()
    body = json.loads(response.get_body())
    assert body["vm_id"].endswith("/virtualMachines/snoozer")
    tags = app_rt.azure.compute.virtual_machines.get(RG, "snoozer").tags or {}
    assert tags["labimage-autostop"] == due  # the VM's own time is kept for tomorrow
    if body["skipped_today"]:  # two hours on crossed midnight: today is skipped
        assert tags[SKIP_TAG] == now.date().isoformat()
    else:
        assert datetime.fromisoformat(body["stop_at"]) >= now + timedelta(hours=2)
        assert datetime.fromisoformat(tags[SNOOZE_TAG]) == datetime.fromisoformat(body["stop_at"])

    assert fire_autostop(functions, app_rt) == ["other"]


@pytest.mark.parametrize(
    ("group", "name", "params", "status", "field"),
    [
        (RG, "snoozer", {"hours": "99"}, 400, "hours"),
        (RG, "snoozer", {}, 400, "hours"),
        (RG, "nobody", {"hours": "1"}, 404, "name"),
        ("elsewhere", "snoozer", {"hours": "1"}, 404, "name"),
        (RG, "untimed", {"hours": "1"}, 400, "labimage-autostop"),
    ],
)
def test_a_bad_snooze_names_the_field_and_changes_nothing(
    functions: dict[str, Any],
    app_rt: Runtime,
    group: str,
    name: str,
    params: dict[str, str],
    status: int,
    field: str,
) -> None:
    add_records(app_rt, {"snoozer": {"labimage-autostop": "19:00 UTC"}, "untimed": {}})
    request = post(f"vms/{group}/{name}/snooze", params, resource_group=group, name=name)
    response = call(functions, "snooze_vm", request)
    assert response.status_code == status
    assert field in [p["field"] for p in json.loads(response.get_body())["problems"]]
    assert app_rt.azure.compute.virtual_machines.get(RG, "snoozer").tags == {
        "labimage-autostop": "19:00 UTC"
    }


def test_costs_reports_the_stop_a_queue_message_made_and_the_malformed_tag(
    functions: dict[str, Any], app_rt: Runtime
) -> None:
    now = datetime.now(UTC)
    add_records(
        app_rt,
        {
            "costly": {
                "labimage-autostop": f"{hhmm(now - timedelta(minutes=5))} UTC",
                "owner": "ada",
                "project": "ooi",
            },
            "broken": {"labimage-autostop": "19:00 Mars/Olympus"},
        },
    )
    assert fire_autostop(functions, app_rt) == ["costly"]
    (message,) = app_rt.bus.client(AUTOSTOP_QUEUE).receive_messages()
    call(
        functions,
        "autostop_vm",
        QueueMessage(id="m1", body=bytes(message.content), dequeue_count=1),
    )
    assert power(app_rt, "costly") == "deallocated"

    response = call(functions, "get_costs", get("costs", {}))
    assert response.status_code == 200
    body = json.loads(response.get_body())
    (line,) = [line for line in body["summary"] if line["owner"] == "ada"]
    assert line["project"] == "ooi" and line["unknown_saving_stops"] == 0
    assert any("Mars/Olympus" in p["message"] for p in body["problems"])

    bad = call(functions, "get_costs", get("costs", {"from": "last tuesday"}))
    assert bad.status_code == 400
    assert [p["field"] for p in json.loads(bad.get_body())["problems"]] == ["from"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from", "0001-01-01T00:00:00+05:00"),
        ("to", "9999-12-31T23:59:59-05:00"),
        ("from", "1066-10-14"),
        ("to", "9999-12-31"),
    ],
)
def test_costs_for_dates_out_of_range_name_the_field(
    functions: dict[str, Any], app_rt: Runtime, field: str, value: str
) -> None:
    bad = call(functions, "get_costs", get("costs", {field: value}))
    assert bad.status_code == 400
    [problem] = json.loads(bad.get_body())["problems"]
    assert problem["field"] == field and "2000" in problem["message"]


def _alices_build(rt: Runtime) -> str:
    build = Build(
        id="balice0001",
        request={"name": "x"},
        owner="alice@example.org",
        owner_id=object_id_of("alice@example.org"),
    )
    rt.store.create(build)
    return build.id


def _snooze(functions: dict[str, Any], name: str, who: dict[str, str]) -> Any:
    request = post(f"vms/{RG}/{name}/snooze", {"hours": "1"}, who, resource_group=RG, name=name)
    return call(functions, "snooze_vm", request)


def test_a_user_snoozes_only_the_vms_of_their_own_builds(
    functions: dict[str, Any], app_rt: Runtime
) -> None:
    build_id = _alices_build(app_rt)
    timed = {"labimage-autostop": "19:00 UTC"}
    add_records(
        app_rt,
        {
            "kept": {**timed, "labimage-build": build_id},
            "orphan": {**timed, "labimage-build": "bunknown00"},
            "foreign": timed,  # in the auto-stop group, not made by labimage
        },
    )
    vms = app_rt.azure.compute.virtual_machines
    for name in ("kept", "orphan", "foreign"):
        response = _snooze(functions, name, BOB)
        assert response.status_code == 404, name
        assert json.loads(response.get_body())["problems"][0]["field"] == "name"
    for name in ("orphan", "foreign"):
        assert _snooze(functions, name, ALICE).status_code == 404, name
    assert all(SNOOZE_TAG not in (vms.get(RG, n).tags or {}) for n in ("kept", "orphan", "foreign"))
    assert all(SKIP_TAG not in (vms.get(RG, n).tags or {}) for n in ("kept", "orphan", "foreign"))
    assert _snooze(functions, "kept", ALICE).status_code == 200
    # An administrator may snooze a labimage VM or any VM of the auto-stop groups.
    assert _snooze(functions, "orphan", ADMIN).status_code == 200
    assert _snooze(functions, "foreign", ADMIN).status_code == 200
    assert (
        call(
            functions,
            "automation_snooze_vm",
            post(
                f"automation/vms/{RG}/foreign/snooze",
                {"hours": "1"},
                {},
                resource_group=RG,
                name="foreign",
            ),
        ).status_code
        == 200
    )


def test_a_snooze_never_overwrites_a_change_made_after_its_read(app_rt: Runtime) -> None:
    """The Tags API merges only the snooze tags: a change made in between is kept."""
    from shared.costguard import snooze

    add_records(app_rt, {"raced": {"labimage-autostop": "19:00 UTC"}})
    vms = app_rt.azure.compute.virtual_machines

    def someone_else_changes_it(tags: dict[str, str]) -> bool:
        vms.begin_update(RG, "raced", {"tags": {**tags, "labimage-autostop": "off"}}).result()
        return True

    snooze.snooze(app_rt.azure, RG, "raced", 1, datetime.now(UTC), someone_else_changes_it)
    tags = vms.get(RG, "raced").tags
    assert tags["labimage-autostop"] == "off"  # the other change survived the snooze
    assert "labimage-autostop-snooze-until" in tags or "labimage-autostop-skip-until" in tags
