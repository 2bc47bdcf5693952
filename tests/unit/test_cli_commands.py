"""The labimage command against a stub API on 127.0.0.1 that records every request it gets."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.exit_codes import ExitCode
from labimage_cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-request.json"
KEY = "k3y-that-must-never-be-printed"

Answer = tuple[int, Any]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubApi:
    url: str
    routes: dict[tuple[str, str], Callable[[Seen], Answer]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer `method path` (path with query) with `answers` in turn, the last one after."""
        queue = list(answers)
        self.routes[(method, path)] = lambda _seen: queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def api() -> Iterator[StubApi]:
    stub = StubApi("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            stub.seen.append(seen)
            route = stub.routes.get((self.command, self.path))
            status, body = route(seen) if route else (404, {"error": "not found"})
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*argv: str) -> Run:
    """The command with its output going to a pipe (what a script or `| grep` sees)."""
    out_file, err_file = io.StringIO(), io.StringIO()
    out = Console(file=out_file, width=200, force_terminal=False)
    err = Console(file=err_file, width=200, force_terminal=False)
    code = main(list(argv), Consoles(out, err))
    return Run(code, out_file.getvalue(), err_file.getvalue())


def status(state: str, events: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": "b000000001",
        "name": "ooi-jupyter",
        "state": state,
        "stage": "provision",
        "created_at": "2026-03-02T09:00:00+00:00",
        "updated_at": "2026-03-02T09:01:00+00:00",
        "stages": [
            {
                "name": "provision",
                "state": "running",
                "attempts": 1,
                "started_at": "2026-03-02T09:00:00+00:00",
            }
        ],
        "events": [
            {
                "at": f"2026-03-02T09:00:{i:02d}+00:00",
                "stage": "provision",
                "message": f"event number {i}",
            }
            for i in range(events)
        ],
        **extra,
    }


def test_invalid_request_prints_field_paths_exits_2_and_sends_nothing(
    api: StubApi, tmp_path: Path
) -> None:
    request = json.loads(SEED.read_text())
    request["data"][0]["destination"] = "relative/path"
    request["python"]["packages"].append("not a ; pep508 ((")
    request["colour"] = "blue"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(request))
    result = run("--api-url", api.url, "submit", str(path), "--wait")
    assert result.code == ExitCode.INVALID_INPUT == 2
    for field_path in ("data[0].destination", "python.packages[5]", "colour"):
        assert field_path in result.err
    assert "nothing was sent" in result.err
    assert api.seen == []


def test_unreadable_or_non_json_file_is_invalid_input(api: StubApi, tmp_path: Path) -> None:
    assert run("--api-url", api.url, "submit", str(tmp_path / "missing.json")).code == 2
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    result = run("--api-url", api.url, "submit", str(broken))
    assert result.code == 2 and "not valid JSON" in result.err
    assert api.seen == []


def test_submit_posts_the_file_with_the_key_and_prints_id_and_status_url(api: StubApi) -> None:
    accepted = {"id": "b000000001", "status_url": f"{api.url}/api/builds/b000000001"}
    api.on("POST", "/api/automation/builds", (202, accepted))
    result = run("submit", str(SEED), "--api-url", api.url, "--function-key", KEY)
    assert result.code == 0
    assert "build b000000001 accepted" in result.out
    assert accepted["status_url"] in result.out
    [post] = api.seen
    assert post.body == SEED.read_bytes()
    assert post.headers["x-functions-key"] == KEY
    assert KEY not in result.out + result.err
    key = post.headers["idempotency-key"]  # made for this submit, and shown to the user
    assert len(key) >= 32 and f"idempotency key: {key}" in result.out


def test_api_refusals_400_and_413_exit_2_with_the_api_problems(api: StubApi) -> None:
    refused = {
        "error": "invalid request",
        "problems": [{"field": "vm.size", "message": "not offered in westeurope"}],
    }
    api.on(
        "POST", "/api/builds", (400, refused), (413, {"error": "request too large", "problems": []})
    )
    first = run("--api-url", api.url, "submit", str(SEED))
    assert first.code == 2 and "vm.size" in first.err and "not offered in westeurope" in first.err
    second = run("--api-url", api.url, "submit", str(SEED))
    assert second.code == 2 and "request too large" in second.err


def test_environment_gives_url_and_key_and_flags_win(
    api: StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.on("GET", "/api/automation/builds/b000000001", (200, status("running")))
    monkeypatch.setenv("LABIMAGE_API_URL", api.url)
    monkeypatch.setenv("LABIMAGE_FUNCTION_KEY", KEY)
    assert run("status", "b000000001").code == 0
    assert api.seen[-1].headers["x-functions-key"] == KEY
    monkeypatch.setenv("LABIMAGE_API_URL", "http://127.0.0.1:1")
    assert run("status", "b000000001", "--api-url", api.url).code == 0
    assert run("status", "b000000001").code == ExitCode.API_UNREACHABLE


def test_refused_key_exits_1_without_printing_the_key(api: StubApi) -> None:
    api.on("GET", "/api/automation/builds/b000000001", (401, ""))
    result = run("--api-url", api.url, "--function-key", KEY, "status", "b000000001")
    assert result.code == 1 and "function-key" in result.err
    assert KEY not in result.out + result.err


def test_a_key_that_starts_with_a_dash_is_taken_as_the_key(api: StubApi) -> None:
    # Generated keys are URL-safe base64: one in 64 starts with "-" (a CI run drew one).
    api.on("GET", "/api/automation/builds/b000000001", (200, status("running")))
    dashed = "-VjVtnPS39XzUHxVYmBKzrYrF_y-UbHTgG63zpCCMX2YUEOTh1h3UA"
    result = run("status", "b000000001", "--api-url", api.url, "--function-key", dashed)
    assert result.code == 0, result.err
    assert api.seen[-1].headers["x-functions-key"] == dashed


def test_a_key_calls_the_automation_routes_and_a_token_the_user_routes(
    api: StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "eyJhbGciOi.a-sign-in-token.sig"
    api.on("GET", "/api/builds/b000000001", (200, status("running")))
    api.on("GET", "/api/automation/builds/b000000001", (200, status("running")))
    monkeypatch.setenv("LABIMAGE_TOKEN", token)
    assert run("--api-url", api.url, "status", "b000000001").code == 0
    assert api.seen[-1].path == "/api/builds/b000000001"
    assert api.seen[-1].headers["authorization"] == f"Bearer {token}"
    assert "x-functions-key" not in api.seen[-1].headers
    assert run("--api-url", api.url, "--function-key", KEY, "status", "b000000001").code == 0
    assert api.seen[-1].path == "/api/automation/builds/b000000001"
    assert "authorization" not in api.seen[-1].headers
    api.on("GET", "/api/builds/b000000002", (401, ""))
    refused = run("--api-url", api.url, "status", "b000000002")
    assert refused.code == 1 and "--token" in refused.err and token not in refused.err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_api_exits_4_for_every_command() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    for argv in (
        ["submit", str(SEED)],
        ["watch", "b1"],
        ["status", "b1"],
        ["list"],
        ["cancel", "b1"],
        ["events", "b1"],
        ["costs"],
    ):
        result = run("--api-url", url, *argv)
        assert result.code == ExitCode.API_UNREACHABLE == 4, argv
        assert "cannot reach" in result.err


def test_an_api_that_never_answers_is_unreachable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        from labimage_cli.client import ApiClient, ApiUnreachable

        client = ApiClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.3)
        with pytest.raises(ApiUnreachable):
            client.status("b1")


def test_a_url_that_is_not_http_is_invalid_input() -> None:
    assert run("--api-url", "ftp://example.invalid", "status", "b1").code == 2


def test_watch_prints_each_event_once_and_exits_by_outcome(api: StubApi) -> None:
    path = "/api/builds/b000000001"
    api.on(
        "GET",
        path,
        (200, status("running", 1)),
        (200, status("running", 3)),
        (200, status("succeeded", 4, image_id="/images/img-1")),
    )
    result = run("--api-url", api.url, "watch", "b000000001", "--interval", "0.01")
    assert result.code == 0
    counts = [result.out.count(f"event number {i}") for i in range(4)]
    assert counts == [1, 1, 1, 2]  # each once; the last also as the table's last note
    events = [line for line in result.out.splitlines() if "event number" in line][:4]
    assert [line.split()[-1] for line in events] == ["0", "1", "2", "3"]  # in order
    assert "images/img-1" in result.out


def test_watch_of_a_failed_or_cancelled_build_exits_3(api: StubApi) -> None:
    api.on(
        "GET", "/api/builds/b000000001", (200, status("failed", error="provision failed: quota"))
    )
    result = run("--api-url", api.url, "watch", "b000000001")
    assert result.code == ExitCode.BUILD_FAILED == 3
    assert "error: provision failed: quota" in result.out
    api.on("GET", "/api/builds/b000000001", (200, status("cancelled")))
    assert run("--api-url", api.url, "status", "b000000001").code == 3


def test_unknown_build_exits_1_with_the_api_message(api: StubApi) -> None:
    api.on(
        "GET",
        "/api/builds/nope",
        (
            404,
            {
                "error": "not found",
                "problems": [{"field": "id", "message": "there is no build 'nope'"}],
            },
        ),
    )
    result = run("--api-url", api.url, "watch", "nope")
    assert result.code == 1 and "there is no build 'nope'" in result.err


def test_list_follows_page_tokens_with_all(api: StubApi) -> None:
    def build(n: int) -> dict[str, Any]:
        return {
            "id": f"b00000000{n}",
            "name": "n",
            "owner": "alice",
            "project": "p",
            "state": "succeeded",
            "stage": "done",
            "created_at": "2026-03-02T09:00:00+00:00",
            "updated_at": "2026-03-02T09:00:00+00:00",
        }

    api.on(
        "GET",
        "/api/builds?owner=alice&page_size=1",
        (200, {"builds": [build(1)], "next_page_token": "t1"}),
    )
    api.on(
        "GET",
        "/api/builds?owner=alice&page_size=1&page_token=t1",
        (200, {"builds": [build(2)], "next_page_token": None}),
    )
    one = run("--api-url", api.url, "list", "--owner", "alice", "--page-size", "1")
    assert one.code == 0 and "b000000001" in one.out and "b000000002" not in one.out
    assert "--page-token t1" in one.out
    every = run(
        "--api-url", api.url, "list", "--owner", "alice", "--page-size", "1", "--all", "--json"
    )
    assert [b["id"] for b in json.loads(every.out)["builds"]] == ["b000000001", "b000000002"]


def test_cancel_and_its_conflict(api: StubApi) -> None:
    api.on(
        "POST",
        "/api/builds/b000000001/cancel",
        (202, {"id": "b000000001", "status_url": "x"}),
        (
            409,
            {
                "error": "conflict",
                "problems": [{"field": "id", "message": "build b000000001 has already failed"}],
            },
        ),
    )
    assert run("--api-url", api.url, "cancel", "b000000001").code == 0
    conflict = run("--api-url", api.url, "cancel", "b000000001")
    assert conflict.code == 1 and "has already failed" in conflict.err


def test_costs_without_the_endpoint_says_so(api: StubApi) -> None:
    result = run("--api-url", api.url, "costs", "--from", "2026-03-01", "--to", "2026-03-31")
    assert result.code == 1 and "no cost endpoint" in result.err
    assert api.seen[-1].path == "/api/costs?from=2026-03-01&to=2026-03-31"
    api.on("GET", "/api/costs", (200, {"by_owner": [{"owner": "alice", "spend_usd": 4.2}]}))
    shown = run("--api-url", api.url, "costs")
    assert shown.code == 0 and "alice" in shown.out and "4.20" in shown.out


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    for line in (
        "2  invalid input",
        "3  the build failed or was cancelled",
        "4  the API is unreachable",
    ):
        assert line in shown


HOSTILE = "[/x] [link=https://attacker.example]open[/link] \x1b]0;owned\x07\x1b[2J\u202eedoc"


@pytest.mark.parametrize("command", ["status", "watch", "events", "list"])
def test_server_strings_are_shown_literally_without_markup_or_terminal_control(
    api: StubApi, command: str
) -> None:
    notebook = {"name": HOSTILE, "status": "failed", "duration_s": 1e999, "error": HOSTILE}
    hostile = status(
        "failed",
        1,
        error=HOSTILE,
        verification=[{"vm": "build", "jupyter_ok": True, "notebooks": [notebook]}],
    )
    hostile["events"][0]["message"] = HOSTILE
    hostile["stages"][0]["last_error"] = HOSTILE
    api.on("GET", "/api/builds/b000000001", (200, hostile))
    listed = {**hostile, "name": HOSTILE, "owner": HOSTILE}
    api.on("GET", "/api/builds?page_size=1", (200, {"builds": [listed]}))
    args = {"list": ["list", "--page-size", "1"]}
    result = run("--api-url", api.url, *args.get(command, [command, "b000000001"]))
    shown = result.out + result.err
    assert "[/x]" in shown and "[link=https://attacker.example]" in shown, shown
    assert not any(c in shown for c in "\x1b\x07\u202e")


def _listed(count: int) -> dict[str, Any]:
    return {
        "builds": [
            {
                "id": f"b1of7cn{i:03d}x",
                "name": "ooi-jupyter-with-a-long-name",
                "owner": "alice.researcher@oceanography.example.org",
                "project": "ocean-observatories-initiative",
                "state": "succeeded",
                "stage": "done",
                "created_at": "2026-03-02T09:00:00+00:00",
                "updated_at": "2026-03-02T09:30:00+00:00",
            }
            for i in range(count)
        ]
    }


@pytest.mark.parametrize("width", [60, 80, 100])
def test_list_in_a_narrow_terminal_shows_full_ids_and_states(api: StubApi, width: int) -> None:
    api.on("GET", "/api/builds?page_size=3", (200, _listed(3)))
    out = Console(record=True, width=width, force_terminal=True, color_system=None)
    code = main(["--api-url", api.url, "list", "--page-size", "3"], Consoles(out, out))
    shown = out.export_text()
    assert code == 0
    assert all(len(line) <= width for line in shown.splitlines()), shown
    for i in range(3):
        assert f"b1of7cn{i:03d}x" in shown
    assert shown.count("succeeded") == 3
    wide = Console(record=True, width=width, force_terminal=True, color_system=None)
    main(["--api-url", api.url, "list", "--page-size", "3", "--wide"], Consoles(wide, wide))
    assert "ocean-observatories-initiative" in wide.export_text()


def test_list_to_a_pipe_is_plain_text_with_every_column_whole(api: StubApi) -> None:
    api.on("GET", "/api/builds?page_size=3", (200, _listed(3)))
    result = run("--api-url", api.url, "list", "--page-size", "3")
    lines = result.out.splitlines()
    assert lines[0].split("\t") == [
        "id", "name", "owner", "project", "state", "stage", "created", "updated"
    ]  # fmt: skip
    assert lines[1].split("\t")[:5] == [
        "b1of7cn000x",
        "ooi-jupyter-with-a-long-name",
        "alice.researcher@oceanography.example.org",
        "ocean-observatories-initiative",
        "succeeded",
    ]
