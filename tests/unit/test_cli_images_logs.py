"""`labimage images` and `labimage logs` against a stub API on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from labimage_cli.commands import Consoles
from labimage_cli.main import main

Route = tuple[int, str, bytes]  # status, content type, body


class Stub:
    def __init__(self) -> None:
        self.url = ""
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[tuple[str, str]] = []

    def json(self, method: str, path: str, status: int, body: Any) -> None:
        self.routes[(method, path)] = (status, "application/json", json.dumps(body).encode())


@pytest.fixture
def api() -> Iterator[Stub]:
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            stub.seen.append((self.command, self.path))
            status, kind, raw = stub.routes.get(
                (self.command, self.path), (404, "application/json", b'{"error": "not found"}')
            )
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


def run(api: Stub, *argv: str, width: int = 200, terminal: bool = False) -> tuple[int, str, str]:
    out_file, err_file = io.StringIO(), io.StringIO()
    out = Console(file=out_file, width=width, force_terminal=terminal, color_system=None)
    err = Console(file=err_file, width=200, force_terminal=False)
    code = main(["--api-url", api.url, *argv], Consoles(out, err))
    return code, out_file.getvalue(), err_file.getvalue()


IMAGE = {
    "name": "jupyter-ooi-ubuntu2404",
    "kind": "managed-image",
    "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/jupyter-ooi",
    "state": "Succeeded",
    "build_id": "b1of7cn00x",
    "request_name": "ooi-jupyter",
    "owner": "alice@example.org",
    "project": "ooi",
    "created": "2026-03-02T09:30:00+00:00",
    "size_gb": 286,
    "manifest_digest": None,
}


@pytest.mark.parametrize("width", [60, 80])
def test_images_list_fits_the_terminal_with_full_names_states_and_builds(
    api: Stub, width: int
) -> None:
    api.json("GET", "/api/images", 200, {"images": [IMAGE]})
    code, out, _ = run(api, "images", "list", width=width, terminal=True)
    assert code == 0
    assert all(len(line) <= width for line in out.splitlines()), out
    for whole in ("jupyter-ooi-ubuntu2404", "Succeeded", "b1of7cn00x"):
        assert whole in out


def test_images_list_to_a_pipe_has_every_column_and_null_digest_as_dash(api: Stub) -> None:
    api.json("GET", "/api/images", 200, {"images": [IMAGE]})
    code, out, _ = run(api, "images", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split("\t")[0] == "name" and "manifest" in header
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert (cells["size GB"], cells["manifest"], cells["request"]) == ("286", "-", "ooi-jupyter")


def test_images_delete_refused_because_a_vm_uses_it_says_which(api: Stub) -> None:
    problem = {"field": "name", "message": "image 'x' is still used by VM vm-1 (build b1)"}
    api.json("DELETE", "/api/images/x", 409, {"error": "conflict", "problems": [problem]})
    code, _, err = run(api, "images", "delete", "x")
    assert code == 1 and "VM vm-1 (build b1)" in err


def test_a_gallery_version_name_travels_as_one_path_segment(api: Stub) -> None:
    api.json("GET", "/api/images/lab_gallery%3Ajupyter%3A1.0.0", 200, IMAGE)
    code, _, _ = run(api, "images", "show", "lab_gallery:jupyter:1.0.0", "--json")
    assert code == 0
    assert api.seen[-1] == ("GET", "/api/images/lab_gallery%3Ajupyter%3A1.0.0")


def test_logs_lists_then_prints_one_without_terminal_control(api: Stub, tmp_path: Path) -> None:
    entries = [{"name": "build.install-python.log", "bytes": 42, "content_type": "text/plain"}]
    api.json("GET", "/api/builds/b1/logs", 200, {"id": "b1", "logs": entries})
    text = "Resolved 42 packages\x1b]0;owned\x07\nERROR: no numpy==0.0.1\n"
    api.routes[("GET", "/api/builds/b1/logs/build.install-python")] = (
        200,
        "text/plain",
        text.encode(),
    )
    code, listing, _ = run(api, "logs", "b1")
    assert code == 0 and "build.install-python.log" in listing
    code, printed, _ = run(api, "logs", "b1", "build.install-python")
    assert code == 0 and "ERROR: no numpy==0.0.1" in printed
    assert "\x1b" not in printed and "\x07" not in printed
    # --output keeps the bytes exactly as stored (a notebook must stay valid JSON).
    saved = tmp_path / "install.log"
    code, _, err = run(api, "logs", "b1", "build.install-python", "--output", str(saved))
    assert code == 0 and saved.read_bytes() == text.encode() and "bytes written" in err


def test_logs_of_a_build_without_any_says_so(api: Stub) -> None:
    api.json("GET", "/api/builds/b2/logs", 200, {"id": "b2", "logs": []})
    code, out, _ = run(api, "logs", "b2")
    assert code == 0 and "no logs yet" in out
