"""The Jupyter check's HTTP call: a redirect from the guest's Jupyter is a failed check, never
followed (it would carry the token to wherever the guest points)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.errors import PermanentError
from shared.remote.jupyter import jupyter_status


class _Guest(BaseHTTPRequestHandler):
    """/api/status answers 302 to /elsewhere; every path asked for is recorded."""

    asked: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.asked.append((self.path, self.headers.get("Authorization")))
        if self.path == "/api/status":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
            return
        body = b'{"started": "followed"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting_jupyter() -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    _Guest.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Guest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Guest.asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_redirect_from_jupyter_is_a_failed_check_and_is_not_followed(
    redirecting_jupyter: tuple[int, list[tuple[str, str | None]]],
) -> None:
    port, asked = redirecting_jupyter
    with pytest.raises(PermanentError, match="HTTP 302"):
        asyncio.run(jupyter_status(port, "t0ken"))
    assert asked == [("/api/status", "token t0ken")]
