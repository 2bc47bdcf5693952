"""A small HTTP client of the labimage API on the standard library (no extra dependency).

Every call returns the decoded JSON body of a 2xx answer, or raises ApiError (the API answered
with another status) or ApiUnreachable (no answer at all).

Two ways in: with a function key the client calls the automation routes (`/api/automation/...`,
the key in the `x-functions-key` header; a key holder acts as an administrator); otherwise it
calls the user routes with the bearer token of the person signed in (App Service
authentication on Azure: `az account get-access-token --resource <app id URI>`; localcloud:
`python -m localcloud token --name ...`). Neither secret appears in a message, repr or exception.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from labimage_cli.safe_text import clean, clean_str

DEFAULT_API_URL = "http://127.0.0.1:7071"
API_URL_ENV = "LABIMAGE_API_URL"
FUNCTION_KEY_ENV = "LABIMAGE_FUNCTION_KEY"
TOKEN_ENV = "LABIMAGE_TOKEN"
AUTOMATION_PREFIX = "/api/automation/"


class ApiUnreachable(Exception):
    """No HTTP answer: connection refused, timeout, the host name did not resolve."""


class InvalidApiUrl(ValueError):
    """The API URL is not an http(s) URL."""


class ApiError(Exception):
    """The API answered with a status other than 2xx; `body` is its JSON (or text) body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"the API answered {status}: {summary_of(body)}")

    @property
    def problems(self) -> list[dict[str, str]]:
        """The body's problems ({field, message}), empty when it has none."""
        if isinstance(self.body, dict) and isinstance(self.body.get("problems"), list):
            return [p for p in self.body["problems"] if isinstance(p, dict)]
        return []


def summary_of(body: Any) -> str:
    """A one-line description of an error body."""
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    text = body if isinstance(body, str) else json.dumps(body)
    return text.strip()[:200] or "(empty body)"


@dataclass(frozen=True)
class ApiClient:
    """The labimage API at `base_url`: through the automation routes with `function_key`, else
    through the user routes with the bearer `token`."""

    base_url: str = DEFAULT_API_URL
    function_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidApiUrl(f"the API URL {self.base_url!r} is not an http(s) URL")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def submit(
        self, body: bytes, idempotency_key: str | None = None, attempts: int = 3
    ) -> dict[str, Any]:
        """POST /api/builds: {id, status_url} (a new build), or the status of the build this
        idempotency key already made. With a key, a POST that got no answer is sent again
        (at most `attempts` times): the API makes one build per key."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        for attempt in range(1, attempts + 1):
            try:
                answer: dict[str, Any] = self.request(
                    "POST", "/api/builds", body=body, headers=headers
                )
            except ApiUnreachable:
                if not idempotency_key or attempt == attempts:
                    raise
                time.sleep(attempt)
                continue
            answer.setdefault("status_url", f"{self.base_url}/api/builds/{answer['id']}")
            return answer
        raise AssertionError("unreachable")

    def status(self, build_id: str) -> dict[str, Any]:
        """GET /api/builds/{id}: everything known about one build."""
        return self.request("GET", f"/api/builds/{_segment(build_id)}")

    def list_page(
        self,
        *,
        state: str | None = None,
        owner: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/builds: one page {builds, next_page_token}."""
        query = {"state": state, "owner": owner, "page_size": page_size, "page_token": page_token}
        return self.request("GET", "/api/builds", query=query)

    def cancel(self, build_id: str) -> dict[str, Any]:
        """POST /api/builds/{id}/cancel."""
        return self.request("POST", f"/api/builds/{_segment(build_id)}/cancel", body=b"")

    def manifest(self, digest: str) -> dict[str, Any]:
        """GET /api/manifests/{sha256}: what an image holds."""
        return self.request("GET", f"/api/manifests/{_segment(digest)}")

    def manifest_diff(self, a: str, b: str) -> dict[str, Any]:
        """GET /api/manifests/{a}/diff/{b}: what changed from a to b."""
        return self.request("GET", f"/api/manifests/{_segment(a)}/diff/{_segment(b)}")

    def costs(self, date_from: str | None = None, date_to: str | None = None) -> Any:
        """GET /api/costs for a date range."""
        return self.request("GET", "/api/costs", query={"from": date_from, "to": date_to})

    def images(self) -> dict[str, Any]:
        """GET /api/images: {images}."""
        return self.request("GET", "/api/images")

    def image(self, name: str) -> dict[str, Any]:
        """GET /api/images/{name}."""
        return self.request("GET", f"/api/images/{_segment(name)}")

    def delete_image(self, name: str) -> dict[str, Any]:
        """DELETE /api/images/{name}: the deletion started (202)."""
        return self.request("DELETE", f"/api/images/{_segment(name)}")

    def logs(self, build_id: str) -> dict[str, Any]:
        """GET /api/builds/{id}/logs: {id, logs: [{name, bytes, content_type}]}."""
        return self.request("GET", f"/api/builds/{_segment(build_id)}/logs")

    def log(self, build_id: str, job: str) -> bytes:
        """GET /api/builds/{id}/logs/{job}: the entry's bytes as stored (not cleaned: print
        them through safe_text before they reach a terminal)."""
        path = f"/api/builds/{_segment(build_id)}/logs/{_segment(job)}"
        return self._send("GET", path, accept="*/*")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call; the decoded JSON of a 2xx answer, else ApiError or ApiUnreachable."""
        return _decode(self._send(method, path, body=body, query=query, headers=headers))

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> bytes:
        """One call; the raw body of a 2xx answer, else ApiError or ApiUnreachable."""
        if self.function_key and path.startswith("/api/"):
            path = AUTOMATION_PREFIX + path[len("/api/") :]
        url = self.base_url + path
        present = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        if present:
            url += "?" + urllib.parse.urlencode(present)
        headers = {"accept": accept, **(headers or {})}
        if body is not None:
            headers["content-type"] = "application/json"
        if self.function_key:
            headers["x-functions-key"] = self.function_key
        elif self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as error:
            with error:
                raise ApiError(error.code, _decode(error.read())) from None
        except urllib.error.URLError as error:
            raise ApiUnreachable(f"cannot reach {self.base_url}: {error.reason}") from None
        except (TimeoutError, ConnectionError) as error:
            # Timeouts and resets while reading arrive as bare OSErrors, not URLError.
            raise ApiUnreachable(f"cannot reach {self.base_url}: {error}") from None


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return clean(json.loads(text))
    except ValueError:
        return clean_str(text)
    except RecursionError:
        return "(the answer was nested too deeply to read)"
